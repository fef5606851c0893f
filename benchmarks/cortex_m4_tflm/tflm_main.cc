/* Copyright 2026 The hads_keras Authors. Licensed under the Apache License 2.0.

A nested HADS model inside the real TFLite Micro on an emulated Cortex-M4
(QEMU mps2-an386, -icount shift=0; see ../cortex_m4/timer.h), against its
standalone subnetworks on the same TFLite Micro's builtin kernels (CMSIS-NN
in the Arduino library Chirale_TensorFlowLite). Built and run by
benchmarks/cortex_m4_tflm.py, which writes tflm_models.h (the nested model
and one materialized model per subnetwork, hads_keras.export.materialize).

Prints, per subnetwork k,
  INVOKE what=<nested|standalone> k=<k> ticks=<t> arena=<bytes> out=<hex>
with the timer ticks of one Invoke (after a warm-up Invoke), the arena the
interpreter used, and the int8 output.
==============================================================================*/
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hads_ops.h"
#include "semihost.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "timer.h"
#include "tflm_models.h"

// TFLite Micro's logging, to the semihosting console.
extern "C" void DebugLog(const char* s) { semihost_write0(s); }

// Bare metal has no shared objects; static destructors register with it.
extern "C" {
void* __dso_handle = nullptr;
}

namespace {

constexpr int kArenaBytes = 160 * 1024;
alignas(16) uint8_t g_arena[kArenaBytes];

using Resolver = tflite::MicroMutableOpResolver<16>;

bool AddOps(Resolver& r) {
  return r.AddFullyConnected() == kTfLiteOk && r.AddConv2D() == kTfLiteOk &&
         r.AddDepthwiseConv2D() == kTfLiteOk && r.AddMean() == kTfLiteOk &&
         r.AddAveragePool2D() == kTfLiteOk && r.AddMaxPool2D() == kTfLiteOk &&
         r.AddReshape() == kTfLiteOk && r.AddSoftmax() == kTfLiteOk &&
         r.AddQuantize() == kTfLiteOk && r.AddDequantize() == kTfLiteOk &&
         r.AddRelu() == kTfLiteOk && hads::AddHadsOps(r) == kTfLiteOk;
}

void Print(const char* what, int k, uint32_t ticks, size_t arena,
           const TfLiteTensor* out) {
  char line[160];
  snprintf(line, sizeof(line), "INVOKE what=%s k=%d ticks=%lu arena=%lu out=",
           what, k, static_cast<unsigned long>(ticks),
           static_cast<unsigned long>(arena));
  semihost_write0(line);
  const int n = static_cast<int>(out->bytes);
  for (int i = 0; i < n; ++i) {
    snprintf(line, sizeof(line), "%02x",
             static_cast<unsigned>(static_cast<uint8_t>(out->data.int8[i])));
    semihost_write0(line);
  }
  semihost_write0("\n");
}

// Fills the model's features input (the non-int32 one) deterministically.
void FillFeatures(tflite::MicroInterpreter& interp) {
  for (size_t i = 0; i < interp.inputs_size(); ++i) {
    TfLiteTensor* t = interp.input(i);
    if (t->type != kTfLiteInt8) continue;
    uint32_t rng = 0x2545F491u;
    for (size_t j = 0; j < t->bytes; ++j) {
      rng = rng * 1664525u + 1013904223u;
      t->data.int8[j] = static_cast<int8_t>(rng >> 24);
    }
  }
}

int32_t* SubnetworkInput(tflite::MicroInterpreter& interp) {
  for (size_t i = 0; i < interp.inputs_size(); ++i) {
    TfLiteTensor* t = interp.input(i);
    if (t->type == kTfLiteInt32 && t->bytes == 4) return t->data.i32;
  }
  return nullptr;
}

bool Run(const char* what, const unsigned char* model_data, int k,
         bool nested) {
  const tflite::Model* model = tflite::GetModel(model_data);
  static Resolver resolver;
  static bool ops = AddOps(resolver);
  if (!ops) {
    semihost_write0("ERROR resolver\n");
    return false;
  }
  tflite::MicroInterpreter interp(model, resolver, g_arena, kArenaBytes);
  if (interp.AllocateTensors() != kTfLiteOk) {
    semihost_write0("ERROR AllocateTensors\n");
    return false;
  }
  FillFeatures(interp);
  if (nested) {
    int32_t* sub = SubnetworkInput(interp);
    if (sub == nullptr) {
      semihost_write0("ERROR no subnetwork input\n");
      return false;
    }
    *sub = k;
  }
  if (interp.Invoke() != kTfLiteOk) return false;  // warm-up
  // The arena planner may reuse the input's memory once it is consumed:
  // write the features again before the timed Invoke.
  FillFeatures(interp);
  const uint32_t t0 = timer_now();
  const TfLiteStatus st = interp.Invoke();
  const uint32_t ticks = t0 - timer_now();
  if (st != kTfLiteOk) return false;
  Print(what, k, ticks, interp.arena_used_bytes(), interp.output(0));
  return true;
}

}  // namespace

int main() {
  timer_start();
  for (int k = 0; k < kNumSubnetworks; ++k) {
    if (!Run("nested", g_nested_model, k, true)) return 2;
    if (!Run("standalone", kStandaloneModels[k], k, false)) return 3;
  }
  semihost_write0("DONE\n");
  return 0;
}
