// Portable HADS kernels: fully connected, 2-D convolution and depthwise
// convolution that run one nested subnetwork on the full-size buffers.
//
// A subnetwork of a HADS model uses a *prefix* of the channels of every
// layer (docs/nested_tflite_format.md). These kernels therefore take the
// full-size tensors (weights stored once, activation buffers sized for the
// full network) together with the active input/output channel counts, read
// only the active prefix (row stride = full width), write only the active
// output prefix and fill the inactive output channels with the output zero
// point (0.0f for float). Switching subnetwork needs no copy, and the work
// is proportional to the subnetwork's MACs.
//
// Int8 arithmetic is bit-identical to TFLite's reference kernels
// (reference_integer_ops::FullyConnectedPerChannel / ConvPerChannel /
// DepthwiseConvPerChannel, default double-rounding
// MultiplyByQuantizedMultiplier):
//   acc  = bias[c] + sum((x + input_offset) * w)       (int32)
//   acc  = MultiplyByQuantizedMultiplier(acc, multiplier[c], shift[c])
//   acc += output_offset; clamp to [act_min, act_max]
//
// Plain C++17: no TFLite Micro, no dynamic allocation, no exceptions, no
// RTTI, no standard containers, so that the same files build for a
// Cortex-M (Arduino) and for the host tests (tests/native/).
//
// An operator reading a concatenation of sliced groups reads, instead of
// one prefix, the active prefix of every segment of its input channels
// (InputSegments, the overloads taking one); the channels between
// segments' active prefixes are skipped however they are filled.
//
// Layouts (all row-major, channels fastest):
//   fully connected  input [batches, P*C], weights [out, P*C], out [batches, out]
//                    P = in_spatial positions, C = full channels per position
//   conv 2D          input NHWC [N, H, W, Cin], filter [Cout, KH, KW, Cin],
//                    output NHWC [N, OH, OW, Cout]
//   depthwise conv   input NHWC [N, H, W, C], filter [1, KH, KW, C*M],
//                    output NHWC [N, OH, OW, C*M]; output channel c*M + m
//                    reads input channel c.
#ifndef HADS_TFLM_OPS_HADS_KERNELS_H_
#define HADS_TFLM_OPS_HADS_KERNELS_H_

#include <cstdint>

// 1 where the int8 entry points below run the kernels for Cortex-M cores
// with the DSP extension (hads_kernels_dsp.cc: ARMv7E-M such as Cortex-M4 /
// M7, ARMv8-M Mainline with DSP such as Cortex-M33), bit-exact with the
// portable ones in hads::reference. M profile only (their inner loops are
// Thumb-2 assembly; A-profile cores also define __ARM_FEATURE_DSP). Define
// HADS_PORTABLE_KERNELS to force the portable kernels.
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && \
    defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M' && \
    defined(__thumb2__) && !defined(HADS_PORTABLE_KERNELS)
#define HADS_OPTIMIZED_KERNELS 1
#else
#define HADS_OPTIMIZED_KERNELS 0
#endif

namespace hads {

// Result of every kernel and helper. Anything but kOk means nothing was
// written to the output.
enum Status : int32_t {
  kOk = 0,
  kErrNullPointer = 1,       // a required pointer argument is null
  kErrBadShape = 2,          // a full-size dimension is < 1 (or inconsistent)
  kErrBadActiveWidth = 3,    // active channels outside 1 .. full channels
  kErrBadGeometry = 4,       // stride / padding / output size inconsistent
  kErrBadActivationRange = 5,// act_min > act_max
  kErrBadShift = 6,          // a quantized shift outside -31 .. 30
  kErrBadSubnetwork = 7,     // subnetwork index outside 0 .. S-1
  kErrBadTable = 8,          // inconsistent per-subnetwork tables
};

// Short English description of a status, for error messages.
const char* StatusString(Status status);

// TFLite `Padding` enum values (schema), as written in the custom options.
enum Padding : int32_t { kPaddingSame = 0, kPaddingValid = 1 };

// TFLite `ActivationFunctionType` values supported as fused activations.
enum Activation : int32_t {
  kActNone = 0,
  kActRelu = 1,
  kActReluN1To1 = 2,
  kActRelu6 = 3,
};

// ---------------------------------------------------------------------------
// Quantization helpers (identical to TFLite's).

// tflite::MultiplyByQuantizedMultiplier (double rounding: saturating
// rounding doubling high multiply, then rounding right shift).
// shift > 0 is a left shift.
int32_t MultiplyByQuantizedMultiplier(int32_t x, int32_t quantized_multiplier,
                                      int shift);

// tflite::CalculateActivationRangeQuantized for an int8 output with the given
// scale and zero point. Returns kErrBadActivationRange for an unknown
// activation or a non-positive scale.
Status CalculateActivationRangeInt8(Activation activation, float output_scale,
                                    int32_t output_zero_point,
                                    int32_t* act_min, int32_t* act_max);

// Float clamp range of a fused activation (NONE: -FLT_MAX .. FLT_MAX).
Status CalculateActivationRangeFloat(Activation activation, float* act_min,
                                     float* act_max);

// ---------------------------------------------------------------------------
// Geometry.

// tflite::ComputeOutSize / ComputePadding for one spatial dimension
// (dilation 1). Returns kErrBadGeometry for sizes < 1 or a VALID window
// larger than the image.
Status ComputeOutSizeAndPadding(Padding padding, int in_size, int filter_size,
                                int stride, int* out_size, int* pad);

// Full-size shape of a fully connected layer.
struct FullyConnectedShape {
  int batches;       // rows of input/output
  int in_spatial;    // P >= 1: input features are P positions x C channels
  int in_channels;   // C: full channels per position (features = P * C)
  int out_channels;  // full output features
};

// Full-size geometry of a conv 2D or depthwise conv (NHWC).
struct ConvShape {
  int batches;
  int in_height, in_width, in_channels;  // full input channels
  int filter_height, filter_width;
  int out_height, out_width;
  int out_channels;      // conv: full filters; depthwise: in_channels * M
  int stride_height, stride_width;
  int pad_height, pad_width;  // top / left padding (TFLite convention)
  int depth_multiplier;       // depthwise only (M >= 1); ignored by conv
};

// Fills `shape` from the full sizes and the TFLite padding; out_channels is
// set to `out_channels`.
Status MakeConvShape(int batches, int in_height, int in_width,
                     int in_channels, int filter_height, int filter_width,
                     int out_channels, int stride_height, int stride_width,
                     Padding padding, int depth_multiplier, ConvShape* shape);

// ---------------------------------------------------------------------------
// Parameters of one subnetwork's int8 layer.
struct QuantizedParams {
  int32_t input_offset;   // -input zero point
  int32_t output_offset;  // output zero point
  int32_t act_min;        // clamp range, e.g. from CalculateActivationRangeInt8
  int32_t act_max;
  // Per output channel (at least the active ones): quantized multiplier and
  // shift (positive = left) and int32 bias; bias may be null (no bias).
  const int32_t* output_multiplier;
  const int32_t* output_shift;
  const int32_t* bias;
};

// Parameters of a float layer.
struct FloatParams {
  float act_min;
  float act_max;
  const float* bias;  // per output channel, may be null
};

// ---------------------------------------------------------------------------
// Kernels. `active_in` / `active_out` are the subnetwork's active channels
// (1 .. full); for depthwise the active output is active_in * M.
//
// The int8 entry points run the optimized kernels where
// HADS_OPTIMIZED_KERNELS is 1 and the portable ones (hads::reference)
// elsewhere; results are identical bit for bit.

Status FullyConnectedInt8(const FullyConnectedShape& shape,
                          const QuantizedParams& params, int active_in,
                          int active_out, const int8_t* input,
                          const int8_t* weights, int8_t* output);

Status FullyConnectedFloat(const FullyConnectedShape& shape,
                           const FloatParams& params, int active_in,
                           int active_out, const float* input,
                           const float* weights, float* output);

Status Conv2DInt8(const ConvShape& shape, const QuantizedParams& params,
                  int active_in, int active_out, const int8_t* input,
                  const int8_t* filter, int8_t* output);

// Conv2DInt8 with scratch memory: on DSP cores a general (not 1x1)
// convolution builds int16 im2col columns of two output pixels there.
// Give it Conv2DInt8ScratchBytes(shape) bytes, 4-byte aligned (in TFLite
// Micro: RequestScratchBufferInArena in Prepare, GetScratchBuffer in
// Eval). With less (or none, as the overload above) the portable kernel
// runs instead: same results, slower.
int32_t Conv2DInt8ScratchBytes(const ConvShape& shape);

Status Conv2DInt8(const ConvShape& shape, const QuantizedParams& params,
                  int active_in, int active_out, const int8_t* input,
                  const int8_t* filter, int8_t* output, void* scratch,
                  int32_t scratch_bytes);

Status Conv2DFloat(const ConvShape& shape, const FloatParams& params,
                   int active_in, int active_out, const float* input,
                   const float* filter, float* output);

Status DepthwiseConv2DInt8(const ConvShape& shape,
                           const QuantizedParams& params, int active_in,
                           const int8_t* input, const int8_t* filter,
                           int8_t* output);

Status DepthwiseConv2DFloat(const ConvShape& shape, const FloatParams& params,
                            int active_in, const float* input,
                            const float* filter, float* output);

// ---------------------------------------------------------------------------
// Concatenated inputs. The full input channels (per position) are `count`
// segments: segment g starts at channel offset[g] and ends where segment
// g + 1 starts (the last one at the full width). A subnetwork reads the
// first active[g] channels of every segment (0 .. the segment's width, at
// least one channel in all).
struct InputSegments {
  int count;              // G >= 1
  const int32_t* offset;  // [G]: offset[0] = 0, strictly increasing, < full
  const int32_t* active;  // [G]: active channels of every segment
};

// kOk when `segments` lie within `full_in` channels as described above
// (kErrNullPointer, kErrBadTable for the layout, kErrBadActiveWidth for
// active widths); `*total` gets the active channels in all.
Status CheckInputSegments(const InputSegments& segments, int full_in,
                          int* total);

// The kernels on a concatenated input (the checks of the kernels above,
// plus CheckInputSegments). One segment is the prefix case and runs the
// kernels above (optimized where they are); several run the portable
// kernels on every target (the DSP kernels read one prefix).
Status FullyConnectedInt8(const FullyConnectedShape& shape,
                          const QuantizedParams& params,
                          const InputSegments& segments, int active_out,
                          const int8_t* input, const int8_t* weights,
                          int8_t* output);

Status Conv2DInt8(const ConvShape& shape, const QuantizedParams& params,
                  const InputSegments& segments, int active_out,
                  const int8_t* input, const int8_t* filter, int8_t* output,
                  void* scratch, int32_t scratch_bytes);

// Channel-wise, so its output has the input's segments, each
// depth_multiplier times as wide (segment g's output channels start at
// offset[g] * depth_multiplier); channels outside them are set to the
// output zero point.
Status DepthwiseConv2DInt8(const ConvShape& shape,
                           const QuantizedParams& params,
                           const InputSegments& segments, const int8_t* input,
                           const int8_t* filter, int8_t* output);

// The portable int8 kernels: the reference the optimized ones are tested
// against, and what the entry points above run on other targets.
namespace reference {

Status FullyConnectedInt8(const FullyConnectedShape& shape,
                          const QuantizedParams& params, int active_in,
                          int active_out, const int8_t* input,
                          const int8_t* weights, int8_t* output);

Status Conv2DInt8(const ConvShape& shape, const QuantizedParams& params,
                  int active_in, int active_out, const int8_t* input,
                  const int8_t* filter, int8_t* output);

Status DepthwiseConv2DInt8(const ConvShape& shape,
                           const QuantizedParams& params, int active_in,
                           const int8_t* input, const int8_t* filter,
                           int8_t* output);

Status FullyConnectedInt8(const FullyConnectedShape& shape,
                          const QuantizedParams& params,
                          const InputSegments& segments, int active_out,
                          const int8_t* input, const int8_t* weights,
                          int8_t* output);

Status Conv2DInt8(const ConvShape& shape, const QuantizedParams& params,
                  const InputSegments& segments, int active_out,
                  const int8_t* input, const int8_t* filter, int8_t* output);

Status DepthwiseConv2DInt8(const ConvShape& shape,
                           const QuantizedParams& params,
                           const InputSegments& segments, const int8_t* input,
                           const int8_t* filter, int8_t* output);

}  // namespace reference

// ---------------------------------------------------------------------------
// Subnetwork tables (the custom options of one HADS operator, already parsed
// into int32 arrays) and the per-inference lookup that switching relies on.
struct SubnetworkTables {
  int num_subnetworks;        // S >= 1
  int full_in;                // full input channels (per position)
  int full_out;               // full output channels
  const int32_t* in_channels;        // [S]
  const int32_t* out_channels;       // [S]
  const int32_t* output_multiplier;  // [S * full_out], row k = subnetwork k
  const int32_t* output_shift;       // [S * full_out]
  const int32_t* bias;               // [S * full_out]
};

// Checks the tables once (e.g. in Prepare): widths within 1 .. full,
// non-increasing, shifts within -31 .. 30, multipliers >= 0.
// `depth_multiplier` > 0 additionally requires out = in * M (depthwise).
Status ValidateSubnetworkTables(const SubnetworkTables& tables,
                                int depth_multiplier);

// What one subnetwork uses of a validated table.
struct ActiveSubnetwork {
  int in_channels;
  int out_channels;
  const int32_t* output_multiplier;  // row k
  const int32_t* output_shift;
  const int32_t* bias;
};

// The switch: range check of `subnetwork` and pointer arithmetic into the
// tables. O(1), a few instructions.
inline Status SelectSubnetwork(const SubnetworkTables& tables,
                               int32_t subnetwork, ActiveSubnetwork* active) {
  if (subnetwork < 0 || subnetwork >= tables.num_subnetworks) {
    return kErrBadSubnetwork;
  }
  const int32_t row = subnetwork * tables.full_out;
  active->in_channels = tables.in_channels[subnetwork];
  active->out_channels = tables.out_channels[subnetwork];
  active->output_multiplier = tables.output_multiplier + row;
  active->output_shift = tables.output_shift + row;
  active->bias = tables.bias + row;
  return kOk;
}

// Per-subnetwork segment tables of an operator reading a concatenation
// (custom options `in_segment_offsets`, `in_segment_channels`).
struct SegmentTables {
  int count;                // G >= 1 segments
  const int32_t* offset;    // [G] first channel of every segment
  const int32_t* channels;  // [S * G] active channels, row k = subnetwork k
};

// Checks them once against validated `tables` (e.g. in Prepare): the
// layout of CheckInputSegments within tables.full_in, every row summing to
// in_channels[k], every segment's width non-increasing over k.
Status ValidateSegmentTables(const SubnetworkTables& tables,
                             const SegmentTables& segments);

// Row `subnetwork` of validated segment tables (range-checked by
// SelectSubnetwork before).
inline InputSegments SelectSegments(const SegmentTables& segments,
                                    int32_t subnetwork) {
  InputSegments active;
  active.count = segments.count;
  active.offset = segments.offset;
  active.active = segments.channels + subnetwork * segments.count;
  return active;
}

}  // namespace hads

#endif  // HADS_TFLM_OPS_HADS_KERNELS_H_
