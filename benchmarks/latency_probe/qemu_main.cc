/* Copyright 2026 The hads_keras Authors. Licensed under the Apache License 2.0.

The latency probe (tflm_ops/hads_latency_probe.h) on QEMU's mps2-an386
(Cortex-M4F) with -icount shift=0: the CMSDK timer ticks once per 40
executed instructions (benchmarks/cortex_m4/timer.h), so costs are
instructions, exact to 40. The model comes from hads_probe_model.h, written
by hads_keras.latency_probe; the CSV goes to the semihosting console.
==============================================================================*/
#include <stdint.h>

#include "hads_latency_probe.h"
#include "hads_probe_model.h"
#include "semihost.h"
#include "timer.h"

namespace {

// QEMU's RAM is 4 MiB; the probe checks that its buffers fit.
alignas(8) uint8_t g_arena[3 * 1024 * 1024];

// The timer counts down; the probe wants an up-counter.
uint32_t Now() { return ~timer_now(); }

void Write(const char* text) { semihost_write0(text); }

}  // namespace

int main() {
  timer_start();
  const hads::probe::Timer timer = {"qemu-cmsdk-timer", "instructions", Now,
                                    HADS_BENCH_INSTRUCTIONS_PER_TICK};
  const int32_t needed = hads::probe::SweepArenaBytes(hads_probe_model::kSweep);
  if (needed > static_cast<int32_t>(sizeof(g_arena))) {
    semihost_write0("# error layer=* status=arena of ");
    semihost_write_uint(sizeof(g_arena));
    semihost_write0(" bytes, the model needs ");
    semihost_write_int(needed);
    semihost_write0("\n");
    return 1;
  }
  const hads::Status status =
      hads::probe::RunSweep(hads_probe_model::kSweep, timer, Write, g_arena,
                            static_cast<int32_t>(sizeof(g_arena)));
  return status == hads::kOk ? 0 : 1;
}
