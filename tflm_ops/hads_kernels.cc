// Portable HADS kernels; see hads_kernels.h for the contract.
//
// The loops follow TFLite's reference kernels (same accumulation order, so
// float results match to rounding and int8 results bit for bit); the only
// differences are the active channel bounds, the full-width strides, and
// the per-pixel tap ranges computed once instead of a bounds test per tap
// (a skipped tap adds nothing in either version).
#include "hads_kernels.h"

#include "hads_kernels_dsp.h"

#include <cfloat>
#include <cmath>
#include <cstdint>

namespace hads {
namespace {

constexpr int32_t kInt32Min = INT32_MIN;
constexpr int32_t kInt32Max = INT32_MAX;

// gemmlowp::SaturatingRoundingDoublingHighMul.
inline int32_t SaturatingRoundingDoublingHighMul(int32_t a, int32_t b) {
  const bool overflow = a == b && a == kInt32Min;
  const int64_t ab_64 = static_cast<int64_t>(a) * static_cast<int64_t>(b);
  const int32_t nudge = ab_64 >= 0 ? (1 << 30) : (1 - (1 << 30));
  const int32_t ab_x2_high32 =
      static_cast<int32_t>((ab_64 + nudge) / (static_cast<int64_t>(1) << 31));
  return overflow ? kInt32Max : ab_x2_high32;
}

// gemmlowp::RoundingDivideByPOT (round half away from zero).
inline int32_t RoundingDivideByPOT(int32_t x, int exponent) {
  const int32_t mask =
      static_cast<int32_t>((static_cast<int64_t>(1) << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

// tflite::MultiplyByQuantizedMultiplier (double rounding). Internal inline
// copy so that the per-output requantization in the kernels' loops is not a
// call; the exported MultiplyByQuantizedMultiplier forwards to it.
inline int32_t Requantize(int32_t x, int32_t quantized_multiplier,
                          int shift) {
  const int left_shift = shift > 0 ? shift : 0;
  const int right_shift = shift > 0 ? 0 : -shift;
  // TFLite computes x * (1 << left_shift) in int32 (wrapping on every
  // target it runs on); do the same without signed-overflow UB.
  const int32_t shifted = static_cast<int32_t>(
      static_cast<uint32_t>(x) * (static_cast<uint32_t>(1) << left_shift));
  return RoundingDivideByPOT(
      SaturatingRoundingDoublingHighMul(shifted, quantized_multiplier),
      right_shift);
}

inline int32_t Clamp(int32_t v, int32_t lo, int32_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

inline float ClampF(float v, float lo, float hi) {
  // Same order as tflite::ActivationFunctionWithMinMax: max first, then min.
  const float t = v < lo ? lo : v;
  return t > hi ? hi : t;
}

// sum over i < n of w[i] * (x[i] + offset), added to acc.
inline int32_t DotInt8(int32_t acc, const int8_t* x, const int8_t* w, int n,
                       int32_t offset) {
  for (int i = 0; i < n; ++i) {
    acc += static_cast<int32_t>(w[i]) * (static_cast<int32_t>(x[i]) + offset);
  }
  return acc;
}

// DotInt8 over the active channels of every segment, in channel order (the
// order of the physically sliced layer's packed channels).
inline int32_t DotInt8Segments(int32_t acc, const int8_t* x, const int8_t* w,
                               const InputSegments& segments, int32_t offset) {
  for (int g = 0; g < segments.count; ++g) {
    const int begin = segments.offset[g];
    acc = DotInt8(acc, x + begin, w + begin, segments.active[g], offset);
  }
  return acc;
}

// total + x[0] * w[0] + x[1] * w[1] + ..., left to right as TFLite's
// reference kernels add.
inline float DotFloat(float total, const float* x, const float* w, int n) {
  for (int i = 0; i < n; ++i) total += x[i] * w[i];
  return total;
}

// Depthwise kernels accumulate this many channels at a time on the stack.
constexpr int kDepthwiseChunk = 64;

inline int Max(int a, int b) { return a > b ? a : b; }
inline int Min(int a, int b) { return a < b ? a : b; }

// TfLiteRound (std::round: half away from zero) of f / scale, then + zp,
// as tflite::Quantize in kernel_util.h. False when it would overflow int32.
bool QuantizeValue(float scale, int32_t zero_point, float f, int32_t* q) {
  const float tmp = std::round(f / scale);
  if (!(tmp >= static_cast<float>(kInt32Min) &&
        tmp <= static_cast<float>(kInt32Max))) {
    return false;
  }
  // tflite adds in int32; do it in int64 so an extreme zero point cannot
  // overflow here, then clamp (the caller clamps to int8 anyway).
  const int64_t v = static_cast<int64_t>(zero_point) + static_cast<int64_t>(tmp);
  *q = static_cast<int32_t>(v < kInt32Min ? kInt32Min
                                          : (v > kInt32Max ? kInt32Max : v));
  return true;
}

Status CheckQuantizedParams(const QuantizedParams& p, int active_out) {
  if (p.output_multiplier == nullptr || p.output_shift == nullptr) {
    return kErrNullPointer;
  }
  if (p.act_min > p.act_max) return kErrBadActivationRange;
  for (int c = 0; c < active_out; ++c) {
    if (p.output_shift[c] < -31 || p.output_shift[c] > 30) return kErrBadShift;
  }
  return kOk;
}

Status CheckConvShape(const ConvShape& s) {
  if (s.batches < 1 || s.in_height < 1 || s.in_width < 1 ||
      s.in_channels < 1 || s.filter_height < 1 || s.filter_width < 1 ||
      s.out_height < 1 || s.out_width < 1 || s.out_channels < 1) {
    return kErrBadShape;
  }
  if (s.stride_height < 1 || s.stride_width < 1 || s.pad_height < 0 ||
      s.pad_width < 0) {
    return kErrBadGeometry;
  }
  return kOk;
}

#if HADS_OPTIMIZED_KERNELS
// The DSP kernels take int8 zero points (16-bit lanes hold x + offset) and
// multipliers other than INT32_MIN (the one saturating case of the
// requantization, never produced by QuantizeMultiplier); anything else runs
// on the portable kernels.
bool DspKernelsApply(const QuantizedParams& p, int active_out) {
  if (p.input_offset < -127 || p.input_offset > 128) return false;
  for (int c = 0; c < active_out; ++c) {
    if (p.output_multiplier[c] == kInt32Min) return false;
  }
  return true;
}
#endif

Status CheckFcShape(const FullyConnectedShape& s) {
  if (s.batches < 1 || s.in_spatial < 1 || s.in_channels < 1 ||
      s.out_channels < 1) {
    return kErrBadShape;
  }
  return kOk;
}

inline bool ActiveOk(int active, int full) {
  return active >= 1 && active <= full;
}

// Valid filter taps [*begin, *end) of one spatial dimension for a window
// starting at `origin` in an image of `size`.
inline void TapRange(int origin, int filter_size, int size, int* begin,
                     int* end) {
  *begin = Max(0, -origin);
  *end = Min(filter_size, size - origin);
}

}  // namespace

const char* StatusString(Status status) {
  switch (status) {
    case kOk:
      return "ok";
    case kErrNullPointer:
      return "a required pointer is null";
    case kErrBadShape:
      return "a tensor dimension is < 1 or inconsistent";
    case kErrBadActiveWidth:
      return "active channels outside 1 .. full channels";
    case kErrBadGeometry:
      return "stride, padding or output size inconsistent";
    case kErrBadActivationRange:
      return "bad activation range";
    case kErrBadShift:
      return "quantized shift outside -31 .. 30";
    case kErrBadSubnetwork:
      return "subnetwork index out of range";
    case kErrBadTable:
      return "inconsistent per-subnetwork tables";
  }
  return "unknown status";
}

int32_t MultiplyByQuantizedMultiplier(int32_t x, int32_t quantized_multiplier,
                                      int shift) {
  return Requantize(x, quantized_multiplier, shift);
}

Status CalculateActivationRangeInt8(Activation activation, float output_scale,
                                    int32_t output_zero_point,
                                    int32_t* act_min, int32_t* act_max) {
  if (act_min == nullptr || act_max == nullptr) return kErrNullPointer;
  if (!(output_scale > 0.0f)) return kErrBadActivationRange;
  const int32_t qmin = -128;
  const int32_t qmax = 127;
  int32_t lo = qmin;
  int32_t hi = qmax;
  int32_t q = 0;
  switch (activation) {
    case kActNone:
      break;
    case kActRelu:
      if (!QuantizeValue(output_scale, output_zero_point, 0.0f, &q)) {
        return kErrBadActivationRange;
      }
      lo = Max(qmin, q);
      break;
    case kActRelu6:
      if (!QuantizeValue(output_scale, output_zero_point, 0.0f, &q)) {
        return kErrBadActivationRange;
      }
      lo = Max(qmin, q);
      if (!QuantizeValue(output_scale, output_zero_point, 6.0f, &q)) {
        return kErrBadActivationRange;
      }
      hi = Min(qmax, q);
      break;
    case kActReluN1To1:
      if (!QuantizeValue(output_scale, output_zero_point, -1.0f, &q)) {
        return kErrBadActivationRange;
      }
      lo = Max(qmin, q);
      if (!QuantizeValue(output_scale, output_zero_point, 1.0f, &q)) {
        return kErrBadActivationRange;
      }
      hi = Min(qmax, q);
      break;
    default:
      return kErrBadActivationRange;
  }
  *act_min = lo;
  *act_max = hi;
  return kOk;
}

Status CalculateActivationRangeFloat(Activation activation, float* act_min,
                                     float* act_max) {
  if (act_min == nullptr || act_max == nullptr) return kErrNullPointer;
  switch (activation) {
    case kActNone:
      *act_min = -FLT_MAX;
      *act_max = FLT_MAX;
      return kOk;
    case kActRelu:
      *act_min = 0.0f;
      *act_max = FLT_MAX;
      return kOk;
    case kActRelu6:
      *act_min = 0.0f;
      *act_max = 6.0f;
      return kOk;
    case kActReluN1To1:
      *act_min = -1.0f;
      *act_max = 1.0f;
      return kOk;
  }
  return kErrBadActivationRange;
}

Status ComputeOutSizeAndPadding(Padding padding, int in_size, int filter_size,
                                int stride, int* out_size, int* pad) {
  if (out_size == nullptr || pad == nullptr) return kErrNullPointer;
  if (in_size < 1 || filter_size < 1 || stride < 1) return kErrBadGeometry;
  // In int64: any int sizes and strides are accepted without overflow.
  const int64_t in = in_size;
  const int64_t step = stride;
  int64_t out = 0;
  if (padding == kPaddingSame) {
    out = (in + step - 1) / step;
  } else if (padding == kPaddingValid) {
    out = (in + step - filter_size) / step;
  } else {
    return kErrBadGeometry;
  }
  if (out < 1) return kErrBadGeometry;
  // tflite::ComputePadding: half the total padding, the extra one (if odd)
  // goes to the bottom/right.
  const int64_t total = (out - 1) * step + filter_size - in;
  if (total > INT32_MAX) return kErrBadGeometry;
  *out_size = static_cast<int>(out);
  *pad = total > 0 ? static_cast<int>(total / 2) : 0;
  return kOk;
}

Status MakeConvShape(int batches, int in_height, int in_width,
                     int in_channels, int filter_height, int filter_width,
                     int out_channels, int stride_height, int stride_width,
                     Padding padding, int depth_multiplier, ConvShape* shape) {
  if (shape == nullptr) return kErrNullPointer;
  ConvShape s = {};
  s.batches = batches;
  s.in_height = in_height;
  s.in_width = in_width;
  s.in_channels = in_channels;
  s.filter_height = filter_height;
  s.filter_width = filter_width;
  s.out_channels = out_channels;
  s.stride_height = stride_height;
  s.stride_width = stride_width;
  s.depth_multiplier = depth_multiplier;
  Status st = ComputeOutSizeAndPadding(padding, in_height, filter_height,
                                       stride_height, &s.out_height,
                                       &s.pad_height);
  if (st != kOk) return st;
  st = ComputeOutSizeAndPadding(padding, in_width, filter_width, stride_width,
                                &s.out_width, &s.pad_width);
  if (st != kOk) return st;
  st = CheckConvShape(s);
  if (st != kOk) return st;
  *shape = s;
  return kOk;
}

// ---------------------------------------------------------------------------
// Fully connected.

namespace {

// What every fully connected kernel checks before it reads anything.
Status CheckFcArgs(const FullyConnectedShape& shape, int active_in,
                   int active_out, const void* input, const void* weights,
                   const void* output) {
  Status st = CheckFcShape(shape);
  if (st != kOk) return st;
  if (input == nullptr || weights == nullptr || output == nullptr) {
    return kErrNullPointer;
  }
  if (!ActiveOk(active_in, shape.in_channels) ||
      !ActiveOk(active_out, shape.out_channels)) {
    return kErrBadActiveWidth;
  }
  return kOk;
}

}  // namespace

namespace reference {

Status FullyConnectedInt8(const FullyConnectedShape& shape,
                          const QuantizedParams& params, int active_in,
                          int active_out, const int8_t* input,
                          const int8_t* weights, int8_t* output) {
  Status st = CheckFcArgs(shape, active_in, active_out, input, weights,
                          output);
  if (st != kOk) return st;
  const int32_t zero = 0;
  const int32_t width = active_in;
  return reference::FullyConnectedInt8(shape, params,
                                       InputSegments{1, &zero, &width},
                                       active_out, input, weights, output);
}

Status FullyConnectedInt8(const FullyConnectedShape& shape,
                          const QuantizedParams& params,
                          const InputSegments& segments, int active_out,
                          const int8_t* input, const int8_t* weights,
                          int8_t* output) {
  Status st = CheckFcShape(shape);
  if (st != kOk) return st;
  int active_in = 0;
  st = CheckInputSegments(segments, shape.in_channels, &active_in);
  if (st != kOk) return st;
  st = CheckFcArgs(shape, active_in, active_out, input, weights, output);
  if (st != kOk) return st;
  st = CheckQuantizedParams(params, active_out);
  if (st != kOk) return st;

  const int row = shape.in_spatial * shape.in_channels;  // full features
  const bool one_prefix = segments.count == 1 && segments.offset[0] == 0;
  const int32_t in_offset = params.input_offset;
  const int8_t fill = static_cast<int8_t>(
      Clamp(params.output_offset, -128, 127));
  for (int b = 0; b < shape.batches; ++b) {
    const int8_t* in_row = input + b * row;
    int8_t* out_row = output + b * shape.out_channels;
    for (int oc = 0; oc < active_out; ++oc) {
      const int8_t* w_row = weights + oc * row;
      int32_t acc = 0;
      for (int p = 0; p < shape.in_spatial; ++p) {
        const int8_t* x = in_row + p * shape.in_channels;
        const int8_t* w = w_row + p * shape.in_channels;
        acc = one_prefix ? DotInt8(acc, x, w, active_in, in_offset)
                         : DotInt8Segments(acc, x, w, segments, in_offset);
      }
      if (params.bias != nullptr) acc += params.bias[oc];
      acc = Requantize(acc, params.output_multiplier[oc],
                                          params.output_shift[oc]);
      acc += params.output_offset;
      out_row[oc] = static_cast<int8_t>(Clamp(acc, params.act_min,
                                              params.act_max));
    }
    for (int oc = active_out; oc < shape.out_channels; ++oc) out_row[oc] = fill;
  }
  return kOk;
}

}  // namespace reference

// The public entry points: the portable kernels' checks, then the DSP
// kernel where the target has one (hads_kernels_dsp.h), else the portable
// kernel itself.
Status FullyConnectedInt8(const FullyConnectedShape& shape,
                          const QuantizedParams& params, int active_in,
                          int active_out, const int8_t* input,
                          const int8_t* weights, int8_t* output) {
#if HADS_OPTIMIZED_KERNELS
  Status st = CheckFcArgs(shape, active_in, active_out, input, weights,
                          output);
  if (st != kOk) return st;
  st = CheckQuantizedParams(params, active_out);
  if (st != kOk) return st;
  if (DspKernelsApply(params, active_out)) {
    return dsp::FullyConnectedInt8(shape, params, active_in, active_out, input,
                                   weights, output);
  }
#endif
  return reference::FullyConnectedInt8(shape, params, active_in, active_out,
                                       input, weights, output);
}

Status FullyConnectedInt8(const FullyConnectedShape& shape,
                          const QuantizedParams& params,
                          const InputSegments& segments, int active_out,
                          const int8_t* input, const int8_t* weights,
                          int8_t* output) {
  if (segments.count == 1 && segments.offset != nullptr &&
      segments.active != nullptr && segments.offset[0] == 0) {
    return FullyConnectedInt8(shape, params, segments.active[0], active_out,
                              input, weights, output);
  }
  return reference::FullyConnectedInt8(shape, params, segments, active_out,
                                       input, weights, output);
}

Status FullyConnectedFloat(const FullyConnectedShape& shape,
                           const FloatParams& params, int active_in,
                           int active_out, const float* input,
                           const float* weights, float* output) {
  Status st = CheckFcArgs(shape, active_in, active_out, input, weights,
                          output);
  if (st != kOk) return st;
  if (!(params.act_min <= params.act_max)) return kErrBadActivationRange;

  const int row = shape.in_spatial * shape.in_channels;
  for (int b = 0; b < shape.batches; ++b) {
    const float* in_row = input + b * row;
    float* out_row = output + b * shape.out_channels;
    for (int oc = 0; oc < active_out; ++oc) {
      const float* w_row = weights + oc * row;
      float total = 0.0f;
      for (int p = 0; p < shape.in_spatial; ++p) {
        const float* x = in_row + p * shape.in_channels;
        const float* w = w_row + p * shape.in_channels;
        for (int c = 0; c < active_in; ++c) total += x[c] * w[c];
      }
      const float bias = params.bias != nullptr ? params.bias[oc] : 0.0f;
      out_row[oc] = ClampF(total + bias, params.act_min, params.act_max);
    }
    for (int oc = active_out; oc < shape.out_channels; ++oc) out_row[oc] = 0.0f;
  }
  return kOk;
}

// ---------------------------------------------------------------------------
// Conv 2D.

namespace {

Status CheckConvArgs(const ConvShape& shape, int active_in, int active_out,
                     const void* input, const void* filter,
                     const void* output) {
  Status st = CheckConvShape(shape);
  if (st != kOk) return st;
  if (input == nullptr || filter == nullptr || output == nullptr) {
    return kErrNullPointer;
  }
  if (!ActiveOk(active_in, shape.in_channels) ||
      !ActiveOk(active_out, shape.out_channels)) {
    return kErrBadActiveWidth;
  }
  return kOk;
}

}  // namespace

namespace reference {

Status Conv2DInt8(const ConvShape& shape, const QuantizedParams& params,
                  int active_in, int active_out, const int8_t* input,
                  const int8_t* filter, int8_t* output) {
  Status st = CheckConvArgs(shape, active_in, active_out, input, filter, output);
  if (st != kOk) return st;
  const int32_t zero = 0;
  const int32_t width = active_in;
  return reference::Conv2DInt8(shape, params, InputSegments{1, &zero, &width},
                               active_out, input, filter, output);
}

Status Conv2DInt8(const ConvShape& shape, const QuantizedParams& params,
                  const InputSegments& segments, int active_out,
                  const int8_t* input, const int8_t* filter, int8_t* output) {
  Status st = CheckConvShape(shape);
  if (st != kOk) return st;
  int active_in = 0;
  st = CheckInputSegments(segments, shape.in_channels, &active_in);
  if (st != kOk) return st;
  st = CheckConvArgs(shape, active_in, active_out, input, filter, output);
  if (st != kOk) return st;
  st = CheckQuantizedParams(params, active_out);
  if (st != kOk) return st;

  const int cin = shape.in_channels;
  const int cout = shape.out_channels;
  // One segment from channel 0 (every input but a concatenation): the
  // plain dot product, with its length in a register (reading it from the
  // segment table inside the loop costs ~5 % on the host).
  const bool one_prefix = segments.count == 1 && segments.offset[0] == 0;
  const int in_row = shape.in_width * cin;        // input stride of one y
  const int f_row = shape.filter_width * cin;     // filter stride of one y
  const int f_size = shape.filter_height * f_row; // one output channel
  const int32_t in_offset = params.input_offset;
  const int8_t fill = static_cast<int8_t>(
      Clamp(params.output_offset, -128, 127));
  for (int b = 0; b < shape.batches; ++b) {
    const int8_t* in_b = input + b * shape.in_height * in_row;
    for (int oy = 0; oy < shape.out_height; ++oy) {
      const int in_y0 = oy * shape.stride_height - shape.pad_height;
      int fy_begin, fy_end;
      TapRange(in_y0, shape.filter_height, shape.in_height, &fy_begin, &fy_end);
      for (int ox = 0; ox < shape.out_width; ++ox) {
        const int in_x0 = ox * shape.stride_width - shape.pad_width;
        int fx_begin, fx_end;
        TapRange(in_x0, shape.filter_width, shape.in_width, &fx_begin,
                 &fx_end);
        int8_t* out = output +
                      ((b * shape.out_height + oy) * shape.out_width + ox) *
                          cout;
        for (int oc = 0; oc < active_out; ++oc) {
          const int8_t* f_oc = filter + oc * f_size;
          int32_t acc = 0;
          for (int fy = fy_begin; fy < fy_end; ++fy) {
            const int8_t* x_y = in_b + (in_y0 + fy) * in_row;
            const int8_t* w_y = f_oc + fy * f_row;
            if (active_in == cin) {
              // All input channels: the taps of a filter row are contiguous.
              acc = DotInt8(acc, x_y + (in_x0 + fx_begin) * cin,
                            w_y + fx_begin * cin, (fx_end - fx_begin) * cin,
                            in_offset);
            } else if (one_prefix) {
              for (int fx = fx_begin; fx < fx_end; ++fx) {
                acc = DotInt8(acc, x_y + (in_x0 + fx) * cin, w_y + fx * cin,
                              active_in, in_offset);
              }
            } else {
              for (int fx = fx_begin; fx < fx_end; ++fx) {
                acc = DotInt8Segments(acc, x_y + (in_x0 + fx) * cin,
                                      w_y + fx * cin, segments, in_offset);
              }
            }
          }
          if (params.bias != nullptr) acc += params.bias[oc];
          acc = Requantize(
              acc, params.output_multiplier[oc], params.output_shift[oc]);
          acc += params.output_offset;
          out[oc] = static_cast<int8_t>(Clamp(acc, params.act_min,
                                              params.act_max));
        }
        for (int oc = active_out; oc < cout; ++oc) out[oc] = fill;
      }
    }
  }
  return kOk;
}

}  // namespace reference

int32_t Conv2DInt8ScratchBytes(const ConvShape& shape) {
#if HADS_OPTIMIZED_KERNELS
  if (CheckConvShape(shape) != kOk) return 0;
  return dsp::Conv2DInt8ScratchBytes(shape);
#else
  (void)shape;
  return 0;
#endif
}

Status Conv2DInt8(const ConvShape& shape, const QuantizedParams& params,
                  int active_in, int active_out, const int8_t* input,
                  const int8_t* filter, int8_t* output, void* scratch,
                  int32_t scratch_bytes) {
#if HADS_OPTIMIZED_KERNELS
  Status st = CheckConvArgs(shape, active_in, active_out, input, filter, output);
  if (st != kOk) return st;
  st = CheckQuantizedParams(params, active_out);
  if (st != kOk) return st;
  if (DspKernelsApply(params, active_out)) {
    // kErrNullPointer: a general convolution without (enough) scratch.
    st = dsp::Conv2DInt8(shape, params, active_in, active_out, input, filter,
                         output, scratch, scratch_bytes);
    if (st == kOk) return st;
  }
#else
  (void)scratch;
  (void)scratch_bytes;
#endif
  return reference::Conv2DInt8(shape, params, active_in, active_out, input,
                               filter, output);
}

Status Conv2DInt8(const ConvShape& shape, const QuantizedParams& params,
                  int active_in, int active_out, const int8_t* input,
                  const int8_t* filter, int8_t* output) {
  return Conv2DInt8(shape, params, active_in, active_out, input, filter,
                    output, nullptr, 0);
}

Status Conv2DInt8(const ConvShape& shape, const QuantizedParams& params,
                  const InputSegments& segments, int active_out,
                  const int8_t* input, const int8_t* filter, int8_t* output,
                  void* scratch, int32_t scratch_bytes) {
  if (segments.count == 1 && segments.offset != nullptr &&
      segments.active != nullptr && segments.offset[0] == 0) {
    return Conv2DInt8(shape, params, segments.active[0], active_out, input,
                      filter, output, scratch, scratch_bytes);
  }
  return reference::Conv2DInt8(shape, params, segments, active_out, input,
                               filter, output);
}

Status Conv2DFloat(const ConvShape& shape, const FloatParams& params,
                   int active_in, int active_out, const float* input,
                   const float* filter, float* output) {
  Status st = CheckConvArgs(shape, active_in, active_out, input, filter, output);
  if (st != kOk) return st;
  if (!(params.act_min <= params.act_max)) return kErrBadActivationRange;

  const int cin = shape.in_channels;
  const int cout = shape.out_channels;
  const int in_row = shape.in_width * cin;
  const int f_row = shape.filter_width * cin;
  const int f_size = shape.filter_height * f_row;
  for (int b = 0; b < shape.batches; ++b) {
    const float* in_b = input + b * shape.in_height * in_row;
    for (int oy = 0; oy < shape.out_height; ++oy) {
      const int in_y0 = oy * shape.stride_height - shape.pad_height;
      int fy_begin, fy_end;
      TapRange(in_y0, shape.filter_height, shape.in_height, &fy_begin, &fy_end);
      for (int ox = 0; ox < shape.out_width; ++ox) {
        const int in_x0 = ox * shape.stride_width - shape.pad_width;
        int fx_begin, fx_end;
        TapRange(in_x0, shape.filter_width, shape.in_width, &fx_begin,
                 &fx_end);
        float* out = output +
                     ((b * shape.out_height + oy) * shape.out_width + ox) *
                         cout;
        for (int oc = 0; oc < active_out; ++oc) {
          const float* f_oc = filter + oc * f_size;
          float total = 0.0f;
          for (int fy = fy_begin; fy < fy_end; ++fy) {
            const float* x_y = in_b + (in_y0 + fy) * in_row;
            const float* w_y = f_oc + fy * f_row;
            if (active_in == cin) {
              total = DotFloat(total, x_y + (in_x0 + fx_begin) * cin,
                               w_y + fx_begin * cin,
                               (fx_end - fx_begin) * cin);
            } else {
              for (int fx = fx_begin; fx < fx_end; ++fx) {
                total = DotFloat(total, x_y + (in_x0 + fx) * cin,
                                 w_y + fx * cin, active_in);
              }
            }
          }
          const float bias = params.bias != nullptr ? params.bias[oc] : 0.0f;
          out[oc] = ClampF(total + bias, params.act_min, params.act_max);
        }
        for (int oc = active_out; oc < cout; ++oc) out[oc] = 0.0f;
      }
    }
  }
  return kOk;
}

// ---------------------------------------------------------------------------
// Depthwise conv 2D.

namespace {

Status CheckDepthwiseArgs(const ConvShape& shape, int active_in,
                          const void* input, const void* filter,
                          const void* output) {
  Status st = CheckConvShape(shape);
  if (st != kOk) return st;
  if (input == nullptr || filter == nullptr || output == nullptr) {
    return kErrNullPointer;
  }
  if (shape.depth_multiplier < 1 ||
      shape.out_channels != shape.in_channels * shape.depth_multiplier) {
    return kErrBadShape;
  }
  if (!ActiveOk(active_in, shape.in_channels)) return kErrBadActiveWidth;
  return kOk;
}

}  // namespace

namespace reference {

Status DepthwiseConv2DInt8(const ConvShape& shape,
                           const QuantizedParams& params, int active_in,
                           const int8_t* input, const int8_t* filter,
                           int8_t* output) {
  Status st = CheckDepthwiseArgs(shape, active_in, input, filter, output);
  if (st != kOk) return st;
  const int32_t zero = 0;
  const int32_t width = active_in;
  return reference::DepthwiseConv2DInt8(shape, params,
                                        InputSegments{1, &zero, &width},
                                        input, filter, output);
}

Status DepthwiseConv2DInt8(const ConvShape& shape,
                           const QuantizedParams& params,
                           const InputSegments& segments, const int8_t* input,
                           const int8_t* filter, int8_t* output) {
  Status st = CheckConvShape(shape);
  if (st != kOk) return st;
  int active_in = 0;
  st = CheckInputSegments(segments, shape.in_channels, &active_in);
  if (st != kOk) return st;
  st = CheckDepthwiseArgs(shape, active_in, input, filter, output);
  if (st != kOk) return st;
  const int mult = shape.depth_multiplier;
  // The per-channel tables are read at full-size output channel indices,
  // up to the end of the last active segment.
  const int last = segments.count - 1;
  st = CheckQuantizedParams(
      params, (segments.offset[last] + segments.active[last]) * mult);
  if (st != kOk) return st;

  const int cin = shape.in_channels;
  const int cout = shape.out_channels;
  const int in_row = shape.in_width * cin;
  const int f_row = shape.filter_width * cout;
  const int32_t in_offset = params.input_offset;
  const int8_t fill = static_cast<int8_t>(
      Clamp(params.output_offset, -128, 127));
  for (int b = 0; b < shape.batches; ++b) {
    const int8_t* in_b = input + b * shape.in_height * in_row;
    for (int oy = 0; oy < shape.out_height; ++oy) {
      const int in_y0 = oy * shape.stride_height - shape.pad_height;
      int fy_begin, fy_end;
      TapRange(in_y0, shape.filter_height, shape.in_height, &fy_begin, &fy_end);
      for (int ox = 0; ox < shape.out_width; ++ox) {
        const int in_x0 = ox * shape.stride_width - shape.pad_width;
        int fx_begin, fx_end;
        TapRange(in_x0, shape.filter_width, shape.in_width, &fx_begin,
                 &fx_end);
        int8_t* out = output +
                      ((b * shape.out_height + oy) * shape.out_width + ox) *
                          cout;
        int done = 0;  // output channels written so far
        for (int g = 0; g < segments.count; ++g) {
          const int begin = segments.offset[g] * mult;
          const int end = begin + segments.active[g] * mult;
          for (int oc = done; oc < begin; ++oc) out[oc] = fill;
          // Channels innermost (contiguous in input, filter and output),
          // a chunk of accumulators at a time; per channel the taps are
          // still added in TFLite's order.
          for (int c0 = begin; c0 < end; c0 += kDepthwiseChunk) {
            const int n = Min(kDepthwiseChunk, end - c0);
            int32_t acc[kDepthwiseChunk];
            for (int i = 0; i < n; ++i) acc[i] = 0;
            for (int fy = fy_begin; fy < fy_end; ++fy) {
              for (int fx = fx_begin; fx < fx_end; ++fx) {
                const int8_t* x =
                    in_b + (in_y0 + fy) * in_row + (in_x0 + fx) * cin;
                const int8_t* w = filter + fy * f_row + fx * cout + c0;
                if (mult == 1) {
                  for (int i = 0; i < n; ++i) {
                    acc[i] += static_cast<int32_t>(w[i]) *
                              (static_cast<int32_t>(x[c0 + i]) + in_offset);
                  }
                } else {
                  for (int i = 0; i < n; ++i) {
                    acc[i] += static_cast<int32_t>(w[i]) *
                              (static_cast<int32_t>(x[(c0 + i) / mult]) +
                               in_offset);
                  }
                }
              }
            }
            for (int i = 0; i < n; ++i) {
              const int oc = c0 + i;
              int32_t v = acc[i];
              if (params.bias != nullptr) v += params.bias[oc];
              v = Requantize(v, params.output_multiplier[oc],
                             params.output_shift[oc]);
              v += params.output_offset;
              out[oc] = static_cast<int8_t>(Clamp(v, params.act_min,
                                                  params.act_max));
            }
          }
          done = end;
        }
        for (int oc = done; oc < cout; ++oc) out[oc] = fill;
      }
    }
  }
  return kOk;
}

}  // namespace reference

Status DepthwiseConv2DInt8(const ConvShape& shape,
                           const QuantizedParams& params, int active_in,
                           const int8_t* input, const int8_t* filter,
                           int8_t* output) {
#if HADS_OPTIMIZED_KERNELS
  Status st = CheckDepthwiseArgs(shape, active_in, input, filter, output);
  if (st != kOk) return st;
  const int active_out = active_in * shape.depth_multiplier;
  st = CheckQuantizedParams(params, active_out);
  if (st != kOk) return st;
  if (shape.depth_multiplier == 1 && DspKernelsApply(params, active_out)) {
    return dsp::DepthwiseConv2DInt8(shape, params, active_in, input, filter,
                                    output);
  }
#endif
  return reference::DepthwiseConv2DInt8(shape, params, active_in, input,
                                        filter, output);
}

Status DepthwiseConv2DInt8(const ConvShape& shape,
                           const QuantizedParams& params,
                           const InputSegments& segments, const int8_t* input,
                           const int8_t* filter, int8_t* output) {
  if (segments.count == 1 && segments.offset != nullptr &&
      segments.active != nullptr && segments.offset[0] == 0) {
    return DepthwiseConv2DInt8(shape, params, segments.active[0], input,
                               filter, output);
  }
  return reference::DepthwiseConv2DInt8(shape, params, segments, input,
                                        filter, output);
}

Status DepthwiseConv2DFloat(const ConvShape& shape, const FloatParams& params,
                            int active_in, const float* input,
                            const float* filter, float* output) {
  Status st = CheckDepthwiseArgs(shape, active_in, input, filter, output);
  if (st != kOk) return st;
  if (!(params.act_min <= params.act_max)) return kErrBadActivationRange;
  const int mult = shape.depth_multiplier;
  const int active_out = active_in * mult;

  const int cin = shape.in_channels;
  const int cout = shape.out_channels;
  const int in_row = shape.in_width * cin;
  const int f_row = shape.filter_width * cout;
  for (int b = 0; b < shape.batches; ++b) {
    const float* in_b = input + b * shape.in_height * in_row;
    for (int oy = 0; oy < shape.out_height; ++oy) {
      const int in_y0 = oy * shape.stride_height - shape.pad_height;
      int fy_begin, fy_end;
      TapRange(in_y0, shape.filter_height, shape.in_height, &fy_begin, &fy_end);
      for (int ox = 0; ox < shape.out_width; ++ox) {
        const int in_x0 = ox * shape.stride_width - shape.pad_width;
        int fx_begin, fx_end;
        TapRange(in_x0, shape.filter_width, shape.in_width, &fx_begin,
                 &fx_end);
        float* out = output +
                     ((b * shape.out_height + oy) * shape.out_width + ox) *
                         cout;
        for (int c0 = 0; c0 < active_out; c0 += kDepthwiseChunk) {
          const int n = Min(kDepthwiseChunk, active_out - c0);
          float total[kDepthwiseChunk];
          for (int i = 0; i < n; ++i) total[i] = 0.0f;
          for (int fy = fy_begin; fy < fy_end; ++fy) {
            for (int fx = fx_begin; fx < fx_end; ++fx) {
              const float* x =
                  in_b + (in_y0 + fy) * in_row + (in_x0 + fx) * cin;
              const float* w = filter + fy * f_row + fx * cout + c0;
              for (int i = 0; i < n; ++i) {
                total[i] += x[(c0 + i) / mult] * w[i];
              }
            }
          }
          for (int i = 0; i < n; ++i) {
            const int oc = c0 + i;
            const float bias = params.bias != nullptr ? params.bias[oc] : 0.0f;
            out[oc] = ClampF(total[i] + bias, params.act_min, params.act_max);
          }
        }
        for (int oc = active_out; oc < cout; ++oc) out[oc] = 0.0f;
      }
    }
  }
  return kOk;
}

// ---------------------------------------------------------------------------
// Concatenated inputs.

Status CheckInputSegments(const InputSegments& segments, int full_in,
                          int* total) {
  if (segments.offset == nullptr || segments.active == nullptr ||
      total == nullptr) {
    return kErrNullPointer;
  }
  if (segments.count < 1 || segments.count > full_in ||
      segments.offset[0] != 0) {
    return kErrBadTable;
  }
  int sum = 0;
  for (int g = 0; g < segments.count; ++g) {
    const int32_t begin = segments.offset[g];
    const int32_t end =
        g + 1 < segments.count ? segments.offset[g + 1] : full_in;
    if (end <= begin || end > full_in) return kErrBadTable;
    const int32_t active = segments.active[g];
    if (active < 0 || active > end - begin) return kErrBadActiveWidth;
    sum += active;  // at most full_in: no overflow
  }
  if (sum < 1) return kErrBadActiveWidth;
  *total = sum;
  return kOk;
}

Status ValidateSegmentTables(const SubnetworkTables& tables,
                             const SegmentTables& segments) {
  if (tables.in_channels == nullptr || segments.channels == nullptr) {
    return kErrNullPointer;
  }
  for (int k = 0; k < tables.num_subnetworks; ++k) {
    const InputSegments row = SelectSegments(segments, k);
    int total = 0;
    const Status st = CheckInputSegments(row, tables.full_in, &total);
    if (st != kOk) return st;
    if (total != tables.in_channels[k]) return kErrBadTable;
    for (int g = 0; k > 0 && g < segments.count; ++g) {
      if (row.active[g] > row.active[g - segments.count]) {
        return kErrBadTable;  // subnetworks are nested, largest first
      }
    }
  }
  return kOk;
}

// ---------------------------------------------------------------------------
// Subnetwork tables.

Status ValidateSubnetworkTables(const SubnetworkTables& t,
                                int depth_multiplier) {
  if (t.in_channels == nullptr || t.out_channels == nullptr ||
      t.output_multiplier == nullptr || t.output_shift == nullptr ||
      t.bias == nullptr) {
    return kErrNullPointer;
  }
  if (t.num_subnetworks < 1 || t.full_in < 1 || t.full_out < 1) {
    return kErrBadTable;
  }
  for (int k = 0; k < t.num_subnetworks; ++k) {
    const int32_t in = t.in_channels[k];
    const int32_t out = t.out_channels[k];
    if (in < 1 || in > t.full_in || out < 1 || out > t.full_out) {
      return kErrBadTable;
    }
    if (k > 0 && (in > t.in_channels[k - 1] || out > t.out_channels[k - 1])) {
      return kErrBadTable;  // subnetworks are numbered largest first
    }
    if (depth_multiplier > 0 && out != in * depth_multiplier) {
      return kErrBadTable;
    }
  }
  const int n = t.num_subnetworks * t.full_out;
  for (int i = 0; i < n; ++i) {
    if (t.output_multiplier[i] < 0) return kErrBadTable;
    if (t.output_shift[i] < -31 || t.output_shift[i] > 30) return kErrBadShift;
  }
  return kOk;
}

}  // namespace hads
