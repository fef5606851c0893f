/* Copyright 2026 The hads_keras Authors. Licensed under the Apache License 2.0.

HADS: Hardware-Aware Deep Subnetworks on TFLite Micro.

One nested int8 model holds every subnetwork (exported by hads_keras); the
sketch switches between them at run time by writing one integer, the model's
`subnetwork` input, which every HADS operator reads at Invoke().

  #include <HADS.h>
  #include "hads_model.h"            // written by hads_keras (the C array)

  HadsOpResolver resolver;            // from hads_model.h
  alignas(16) uint8_t arena[kHadsArenaSize];
  hads::NestedModel nested;

  void setup() {
    const tflite::Model* model = tflite::GetModel(g_hads_model);
    HadsModelAddOps(resolver);        // builtins + hads::AddHadsOps(resolver)
    static tflite::MicroInterpreter interpreter(model, resolver, arena,
                                                kHadsArenaSize);
    hads::Result r = nested.begin(model, interpreter, g_hads_cost_table);
    if (r != hads::Result::kOk) Serial.println(hads::ResultString(r));
  }
  void loop() {
    nested.selectForBudget(50000);    // largest subnetwork within 50k MACs
    // or, with a latency table in the export: nested.selectForLatency(2000);
    nested.invoke();
  }

Errors come back as hads::Result values; nothing in the library aborts.
==============================================================================*/
#ifndef HADS_H_
#define HADS_H_

// On Arduino the TFLite Micro library must be included by name first, so
// that the Arduino builder puts it on the include path (see README.md for
// the choice of Chirale_TensorFLowLite).
#if defined(ARDUINO) && !defined(HADS_NO_ARDUINO_TFLM_HEADER)
#include <Chirale_TensorFlowLite.h>
#endif

#include <stddef.h>
#include <stdint.h>

#include "tflm_ops/hads_integrity.h"  // generated from tflm_ops/ (README)
#include "tflm_ops/hads_ops.h"
#include "hads_subnetworks.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

// Core clock (Hz) that NestedModel::selectForLatency() converts a cost table
// in cycles with: F_CPU where the Arduino core defines it, else define
// HADS_CLOCK_HZ before including HADS.h or pass the clock (e.g. CMSIS's
// SystemCoreClock) to selectForLatency(max_us, clock_hz).
#ifndef HADS_CLOCK_HZ
#ifdef F_CPU
#define HADS_CLOCK_HZ F_CPU
#else
#define HADS_CLOCK_HZ 0
#endif
#endif

namespace hads {

// Name of the model input that selects the subnetwork (int32, shape [1]);
// see docs/nested_tflite_format.md.
constexpr const char kSubnetworkInputName[] = "subnetwork";

// A nested HADS model running in a tflite::MicroInterpreter.
//
// The interpreter, the model and the cost table belong to the caller and
// must outlive this object. All calls are cheap; select() is constant time.
// Checks a nested model's bytes against the CRC-32 the exporter stored in
// its metadata (`hads_crc32`, docs/nested_tflite_format.md): kOk,
// kBadChecksum (a weight, table or any other byte changed since the export),
// kNoChecksum (older export) or kBadModel. Off unless called (or
// NestedModel::beginVerified()): it reads the whole model once, about 14
// instructions per byte on a Cortex-M4 (0.26 M instructions, ~4 ms at
// 64 MHz, for the 18.6 KB example model; benchmarks/model_crc_cortex_m4.py).
Result verifyModel(const unsigned char* model_data, size_t model_size);

class NestedModel {
 public:
  NestedModel();

  // Allocates the interpreter's tensors (do not call AllocateTensors()
  // yourself first), finds the `subnetwork` input and selects subnetwork 0.
  // Returns kBadModel, kInterpreterError, kNoSubnetworkInput or kBadTable
  // when something does not fit; the object then stays unusable.
  Result begin(const tflite::Model* model,
               tflite::MicroInterpreter& interpreter, const CostTable& table);

  // begin() after an integrity check: the model's bytes (the C array the
  // interpreter's model was read from: g_hads_model, g_hads_model_len) must
  // match the CRC-32 the exporter stored in them (see verifyModel()).
  // Returns kBadChecksum or kNoChecksum, and starts nothing, when not.
  Result beginVerified(const unsigned char* model_data, size_t model_size,
                       tflite::MicroInterpreter& interpreter,
                       const CostTable& table);

  // Number of subnetworks; 0 before a successful begin().
  int count() const { return selector_.count(); }

  // MACs / parameters / latency of subnetwork k (0 for an invalid k); the
  // latency is in latencyUnit() (LatencyUnit::kNone: the table has none).
  uint32_t macs(int k) const { return selector_.macs(k); }
  uint32_t params(int k) const { return selector_.params(k); }
  uint32_t latency(int k) const { return selector_.latency(k); }
  LatencyUnit latencyUnit() const { return selector_.latencyUnit(); }

  // Switches to subnetwork k (0 = full network, count()-1 = smallest) for
  // the next invoke(): one bounds check and one store.
  Result select(int k) { return selector_.select(k); }

  // Switches to the largest subnetwork with at most max_macs MACs; kNoFit
  // (selection unchanged) when even the smallest is too big.
  Result selectForBudget(uint32_t max_macs) {
    return selector_.selectForBudget(max_macs);
  }

  // Switches to the largest subnetwork whose latency in the cost table is
  // at most max_us microseconds (a table in cycles is converted with
  // clock_hz, by default HADS_CLOCK_HZ); kNoLatency when the table has no
  // latency in us or cycles, kNoFit when even the smallest is too slow
  // (selection unchanged either way).
  Result selectForLatency(uint32_t max_us, uint32_t clock_hz = HADS_CLOCK_HZ) {
    return selector_.selectForLatency(max_us, clock_hz);
  }

  // Active subnetwork; -1 before begin().
  int current() const { return selector_.current(); }

  // Runs the active subnetwork. Use this rather than the interpreter's
  // Invoke(): it first rewrites the `subnetwork` input, whose memory TFLite
  // Micro may reuse during an inference (see SubnetworkSelector::refresh()).
  Result invoke();

  // The data input (the model's input other than `subnetwork`) and the
  // outputs; nullptr before begin() or for a bad index. As always with
  // TFLite Micro, fill the data input before every invoke(): the memory
  // planner may reuse its bytes once the first layer has read them.
  TfLiteTensor* input();
  TfLiteTensor* output(int index = 0);

  // Index of the `subnetwork` input among the interpreter's inputs (-1
  // before begin()).
  int subnetworkInputIndex() const { return subnetwork_input_; }

  // Index of the largest value of an int8 or float32 output (-1 if none).
  int argmax(int output_index = 0);

 private:
  tflite::MicroInterpreter* interpreter_;
  SubnetworkSelector selector_;
  int subnetwork_input_;
  int data_input_;
};

}  // namespace hads

#endif  // HADS_H_
