/* LatencyTable: measure what every layer of your model costs on this board,
for HADS's latency budgets.

Times the HADS kernel of every sliced layer (and every average pooling) of
one model at a grid of active widths, each call on full-size buffers as in
the nested model, and prints a CSV on the Serial Monitor (115200 baud):

  # hads-latency-probe version=1 model=ds_cnn_s fingerprint=... timer=dwt-cyccnt
  layer,in_width,out_width,cycles
  conv1,1,4,48211
  ...
  # done

Cortex-M3/M4/M7/M33 boards (Nano 33 BLE, Portenta, Giga, Nicla) count
cycles with the DWT cycle counter; other boards time with micros() ("us").
Each point is the median of the header's repeats.

The model and the grid come from `hads_probe_model.h`; the one here is
DS-CNN S (hads_keras.models, 9 widths per group, multiples of 4). For your
model:

  hads latency header model.keras --points 9 --multiple-of 4 \
      --min-width 4 --out LatencyTable/hads_probe_model.h

Upload, copy everything the Serial Monitor shows into board.csv, then

  hads latency import board.csv --model model.keras --target nano33ble \
      --out model.nano33ble.json

and solve with hads.solve(..., latency_targets=[...],
latency_table="model.nano33ble.json") (docs/latency_tables.md).
*/
#include <Arduino.h>

#include "hads_probe_model.h"

namespace {

alignas(8) uint8_t arena[HADS_PROBE_ARENA_BYTES];

#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || \
    defined(__ARM_ARCH_8M_MAIN__)
// Cortex-M debug registers (ARMv7-M / ARMv8-M architecture reference).
constexpr uintptr_t kDemcr = 0xE000EDFCu;
constexpr uintptr_t kDwtCtrl = 0xE0001000u;
constexpr uintptr_t kDwtCyccnt = 0xE0001004u;

volatile uint32_t& reg(uintptr_t address) {
  return *reinterpret_cast<volatile uint32_t*>(address);
}

uint32_t now() { return reg(kDwtCyccnt); }

hads::probe::Timer startTimer() {
  reg(kDemcr) |= 1u << 24;  // TRCENA: enable the DWT
  reg(kDwtCyccnt) = 0;
  reg(kDwtCtrl) |= 1u;      // CYCCNTENA
  return {"dwt-cyccnt", "cycles", now, 1};
}
#else
uint32_t now() { return static_cast<uint32_t>(micros()); }

hads::probe::Timer startTimer() { return {"micros", "us", now, 1}; }
#endif

void write(const char* text) { Serial.print(text); }

}  // namespace

void setup() {
  Serial.begin(115200);
  while (!Serial) {
  }
  const hads::probe::Timer timer = startTimer();
  const hads::Status status = hads::probe::RunSweep(
      hads_probe_model::kSweep, timer, write, arena, sizeof(arena));
  if (status != hads::kOk) {
    Serial.print("# error layer=* status=");
    Serial.print(hads::StatusString(status));
    Serial.print(", arena ");
    Serial.print(static_cast<unsigned long>(sizeof(arena)));
    Serial.print(" bytes, needed ");
    Serial.println(static_cast<long>(
        hads::probe::SweepArenaBytes(hads_probe_model::kSweep)));
  }
}

void loop() { delay(1000); }
