// FlexBuffers, from wherever the TFLite Micro build at hand keeps it.
//
// Upstream TFLite Micro (Makefile, Bazel) puts flatbuffers' include/ folder
// on the include path: "flatbuffers/flexbuffers.h". The Arduino library
// Chirale_TensorFLowLite ships flatbuffers inside its src/ as
// third_party/flatbuffers/include/flatbuffers/ and includes it by that path,
// and the Arduino builder puts only each library's src/ on the include path.
// The first layout that has TFLite Micro's own flatbuffers wins, so the
// HADS glue and TFLite Micro always use the same copy.
#ifndef HADS_TFLM_OPS_HADS_FLEXBUFFERS_H_
#define HADS_TFLM_OPS_HADS_FLEXBUFFERS_H_

#if defined(__has_include)
#if __has_include("third_party/flatbuffers/include/flatbuffers/flexbuffers.h")
#include "third_party/flatbuffers/include/flatbuffers/flexbuffers.h"
#define HADS_FLEXBUFFERS_FOUND 1
#endif
#endif

#ifndef HADS_FLEXBUFFERS_FOUND
#include "flatbuffers/flexbuffers.h"
#endif

#endif  // HADS_TFLM_OPS_HADS_FLEXBUFFERS_H_
