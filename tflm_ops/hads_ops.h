// TFLite Micro registrations of the HADS custom operators.
//
// A nested HADS model (docs/nested_tflite_format.md) holds every subnetwork
// in one int8 .tflite file: its FULLY_CONNECTED / CONV_2D /
// DEPTHWISE_CONV_2D operators are CUSTOM operators HADS_FULLY_CONNECTED,
// HADS_CONV_2D and HADS_DEPTHWISE_CONV_2D whose last input is the int32
// model input `subnetwork`. Switching subnetwork is writing that integer
// before Invoke():
//
//   tflite::MicroMutableOpResolver<8> resolver;
//   resolver.AddReshape(); resolver.AddSoftmax(); ...   // builtin ops
//   if (hads::AddHadsOps(resolver) != kTfLiteOk) { ... }
//   tflite::MicroInterpreter interpreter(model, resolver, arena, arena_size);
//   interpreter.AllocateTensors();
//   interpreter.input(1)->data.i32[0] = 2;              // subnetwork 2
//   interpreter.Invoke();
//
// The arithmetic lives in hads_kernels.h (portable, tested on the host
// against TFLite's reference kernels); this file is the glue.
#ifndef HADS_TFLM_OPS_HADS_OPS_H_
#define HADS_TFLM_OPS_HADS_OPS_H_

#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

// TFLite Micro renamed TfLiteRegistration to TFLMRegistration (declared in
// micro_common.h) in 2023; builds that predate it, such as the one in the
// Arduino library Chirale_TensorFLowLite 2.0.0, only have the old name.
#if defined(__has_include)
#if __has_include("tensorflow/lite/micro/micro_common.h")
#include "tensorflow/lite/micro/micro_common.h"
#define HADS_HAVE_TFLM_REGISTRATION 1
#endif
#endif
#ifndef HADS_HAVE_TFLM_REGISTRATION
typedef TfLiteRegistration TFLMRegistration;
#endif

namespace hads {

// Custom operator codes, as written by the exporter. (Plain constexpr, not
// inline: the Arduino mbed core compiles with gnu++14.)
constexpr char kHadsFullyConnected[] = "HADS_FULLY_CONNECTED";
constexpr char kHadsConv2D[] = "HADS_CONV_2D";
constexpr char kHadsDepthwiseConv2D[] = "HADS_DEPTHWISE_CONV_2D";

// Format version of the custom options these operators read.
constexpr int kHadsOptionsVersion = 1;

TFLMRegistration Register_HADS_FULLY_CONNECTED();
TFLMRegistration Register_HADS_CONV_2D();
TFLMRegistration Register_HADS_DEPTHWISE_CONV_2D();

// Registers the three HADS operators on `resolver` (which needs room for
// three more operators). Returns kTfLiteError, with a MicroPrintf message,
// when the resolver is full or an operator is already registered.
template <unsigned int tOpCount>
TfLiteStatus AddHadsOps(tflite::MicroMutableOpResolver<tOpCount>& resolver) {
  // AddCustom copies the registration and keeps the name pointer (a string
  // literal with static storage). Not const: older TFLite Micro releases
  // take a non-const registration pointer.
  TFLMRegistration fully_connected = Register_HADS_FULLY_CONNECTED();
  TFLMRegistration conv = Register_HADS_CONV_2D();
  TFLMRegistration depthwise = Register_HADS_DEPTHWISE_CONV_2D();
  TfLiteStatus status = resolver.AddCustom(kHadsFullyConnected,
                                           &fully_connected);
  if (status != kTfLiteOk) return status;
  status = resolver.AddCustom(kHadsConv2D, &conv);
  if (status != kTfLiteOk) return status;
  return resolver.AddCustom(kHadsDepthwiseConv2D, &depthwise);
}

}  // namespace hads

#endif  // HADS_TFLM_OPS_HADS_OPS_H_
