// Internal header: the int8 kernels for Cortex-M cores with the DSP
// extension (ARMv7E-M: Cortex-M4/M7; ARMv8-M Mainline with DSP: Cortex-M33),
// as TFLite Micro keeps kernels/cmsis_nn/ beside kernels/internal/reference/.
//
// Users call the entry points of hads_kernels.h; on a DSP core
// (HADS_OPTIMIZED_KERNELS == 1) those check their arguments exactly as the
// portable kernels do and then call these. Every function here is bit-exact
// with hads::reference (same int32 accumulation modulo 2^32, the same double
// rounding requantization), and works in place on the nested full-size
// weights and activations (row stride = full width).
//
// Preconditions, established by the caller (hads_kernels.cc): the portable
// kernel's argument checks passed, every active output multiplier is not
// INT32_MIN and input_offset is within -127 .. 128 (an int8 zero point);
// otherwise the caller runs the portable kernel.
#ifndef HADS_TFLM_OPS_HADS_KERNELS_DSP_H_
#define HADS_TFLM_OPS_HADS_KERNELS_DSP_H_

#include <cstdint>

#include "hads_kernels.h"

#if HADS_OPTIMIZED_KERNELS

namespace hads {
namespace dsp {

Status FullyConnectedInt8(const FullyConnectedShape& shape,
                          const QuantizedParams& params, int active_in,
                          int active_out, const int8_t* input,
                          const int8_t* weights, int8_t* output);

// `scratch` (4-byte aligned, at least Conv2DInt8ScratchBytes(shape) bytes)
// holds two im2col columns; 1x1 convolutions without padding need none.
// Returns kErrNullPointer when a general convolution gets too little
// scratch (the caller then runs the portable kernel).
Status Conv2DInt8(const ConvShape& shape, const QuantizedParams& params,
                  int active_in, int active_out, const int8_t* input,
                  const int8_t* filter, int8_t* output, void* scratch,
                  int32_t scratch_bytes);

int32_t Conv2DInt8ScratchBytes(const ConvShape& shape);

// Depth multiplier 1 only (the caller runs the portable kernel otherwise).
Status DepthwiseConv2DInt8(const ConvShape& shape,
                           const QuantizedParams& params, int active_in,
                           const int8_t* input, const int8_t* filter,
                           int8_t* output);

}  // namespace dsp
}  // namespace hads

#endif  // HADS_OPTIMIZED_KERNELS

#endif  // HADS_TFLM_OPS_HADS_KERNELS_DSP_H_
