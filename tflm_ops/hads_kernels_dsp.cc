// Int8 kernels for Cortex-M cores with the DSP extension; see
// hads_kernels_dsp.h for the contract. Compiled on every target, empty
// unless HADS_OPTIMIZED_KERNELS (hads_kernels.h) is 1.
//
// Techniques (the ones ARM's CMSIS-NN uses on these cores, written here
// from scratch for strided nested weights):
// * SXTB16 / SXTAB16 widen two int8 lanes (bytes 0 and 2, or 1 and 3 with
//   ROR #8) into a pair of int16 lanes, SMLAD multiplies two pairs and adds
//   both products to an int32: 4 int8 MACs per loaded word in 2 SMLADs.
// * Fully connected: two weight rows per pass over the input, the input
//   offset added while widening (SXTAB16).
// * 1x1 convolution: a 2x2 block (two pixels x two output channels) per
//   pass; the input offset is folded into the accumulator as
//   input_offset * sum(weights of the row's active prefix), summed at run
//   time per output channel (nothing precomputed, one copy of the weights).
// * General convolution: an int16 im2col of two output pixels at a time
//   (scratch memory, input offset added while widening) and the same 2x2
//   block; padded taps are zeros in the column.
// * Depthwise convolution: four channels per word, SMLABB / SMLATT.
// Weights are read in place: output channel oc's row starts at
// oc * (full row length), and only the active prefix of every input
// position is read. The int32 sums equal the portable kernels' modulo 2^32
// (addition is associative there), and the requantization is the same
// double rounding, so outputs are bit-exact.
#include "hads_kernels_dsp.h"

#if HADS_OPTIMIZED_KERNELS

#include <arm_acle.h>

#include <cstdint>
#include <cstring>

#define HADS_ALWAYS_INLINE inline __attribute__((always_inline))

namespace hads {
namespace dsp {
namespace {

// ---------------------------------------------------------------------------
// Lane helpers.

HADS_ALWAYS_INLINE uint32_t Load4(const int8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);  // LDR; unaligned access is allowed on these cores
  return v;
}

HADS_ALWAYS_INLINE int32_t Sxtb16(uint32_t x) {
  return __sxtb16(static_cast<int32_t>(x));
}

// Bytes 1 and 3 sign-extended into two int16 lanes (SXTB16 with ROR #8;
// GCC does not fold a separate rotate into it).
HADS_ALWAYS_INLINE int32_t Sxtb16Ror8(uint32_t x) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}

// a + bytes 0 and 2 of x, lane-wise (int16 lanes).
HADS_ALWAYS_INLINE int32_t Sxtab16(int32_t a, uint32_t x) {
  return __sxtab16(a, static_cast<int32_t>(x));
}

HADS_ALWAYS_INLINE int32_t Sxtab16Ror8(int32_t a, uint32_t x) {
  int32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
  return r;
}

HADS_ALWAYS_INLINE int32_t Smlad(int32_t a, int32_t b, int32_t acc) {
  return __smlad(a, b, acc);
}

HADS_ALWAYS_INLINE int32_t Smlabb(int32_t a, int32_t b, int32_t acc) {
  return __smlabb(a, b, acc);
}

HADS_ALWAYS_INLINE int32_t Smlatt(int32_t a, int32_t b, int32_t acc) {
  return __smlatt(a, b, acc);
}

// Two int16 lanes holding v.
HADS_ALWAYS_INLINE int32_t Splat16(int32_t v) {
  const uint32_t lane = static_cast<uint32_t>(v) & 0xFFFFu;
  return static_cast<int32_t>(lane | (lane << 16));
}

// The first n (1..3) bytes at p in the low bytes of a word, the rest
// `fill`; reads only those n bytes.
HADS_ALWAYS_INLINE uint32_t LoadPartial(const int8_t* p, int n, uint32_t fill) {
  uint32_t v = fill;
  for (int i = 0; i < n; ++i) {
    const uint32_t byte = static_cast<uint8_t>(p[i]);
    v = (v & ~(0xFFu << (8 * i))) | (byte << (8 * i));
  }
  return v;
}

// tflite::MultiplyByQuantizedMultiplier, double rounding. The nudged
// product floored by 2^31 equals gemmlowp's truncating division with its
// sign-dependent nudge; the INT32_MIN * INT32_MIN saturation case is
// excluded by the caller (no INT32_MIN multipliers).
HADS_ALWAYS_INLINE int32_t Requantize(int32_t x, int32_t multiplier,
                                      int32_t shift) {
  const int32_t left = shift > 0 ? shift : 0;
  const int32_t right = shift > 0 ? 0 : -shift;
  const int32_t shifted =
      static_cast<int32_t>(static_cast<uint32_t>(x) << left);
  const int64_t product = static_cast<int64_t>(shifted) * multiplier +
                          (static_cast<int64_t>(1) << 30);
  const int32_t high = static_cast<int32_t>(product >> 31);
  const int32_t mask =
      static_cast<int32_t>((static_cast<uint32_t>(1) << right) - 1u);
  const int32_t remainder = high & mask;
  const int32_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
  return (high >> right) + (remainder > threshold ? 1 : 0);
}

// Everything per output channel after the sum.
struct OutputStage {
  const int32_t* multiplier;
  const int32_t* shift;
  const int32_t* bias;
  int32_t offset;
  int32_t act_min;
  int32_t act_max;

  explicit OutputStage(const QuantizedParams& p)
      : multiplier(p.output_multiplier),
        shift(p.output_shift),
        bias(p.bias),
        offset(p.output_offset),
        act_min(p.act_min),
        act_max(p.act_max) {}

  HADS_ALWAYS_INLINE int32_t Bias(int oc) const {
    return bias != nullptr ? bias[oc] : 0;
  }

  HADS_ALWAYS_INLINE int8_t Out(int32_t acc, int oc) const {
    int32_t v = Requantize(acc, multiplier[oc], shift[oc]) + offset;
    v = v < act_min ? act_min : v;
    v = v > act_max ? act_max : v;
    return static_cast<int8_t>(v);
  }
};

HADS_ALWAYS_INLINE int8_t FillValue(int32_t output_offset) {
  return static_cast<int8_t>(
      output_offset < -128 ? -128 : (output_offset > 127 ? 127 : output_offset));
}

// ---------------------------------------------------------------------------
// Fully connected: dot products of two weight rows with one input vector.

// Two weight rows (w0 and w0 + row_step) times one input vector, the input
// offset added while widening. Hand-scheduled: 8 columns per iteration,
// 28 instructions per 16 MACs at -Os and -O2.
HADS_ALWAYS_INLINE void Dot2Rows(const int8_t* x, const int8_t* w0,
                                 int32_t row_step, int n, int32_t offset,
                                 int32_t offset2, int32_t* acc0,
                                 int32_t* acc1) {
  int32_t s0 = *acc0;
  int32_t s1 = *acc1;
  const int32_t after = row_step - 4;  // once w0 moved on by 4
  int blocks = n >> 3;
  if (blocks > 0) {
    uint32_t xv, xl, wv, wl;
    __asm__ volatile(
        "1:\n\t"
        "ldr %[xv], [%[x]], #4\n\t"
        "ldr %[wv], [%[w]], #4\n\t"
        "sxtab16 %[xl], %[o2], %[xv]\n\t"
        "sxtab16 %[xv], %[o2], %[xv], ror #8\n\t"
        "sxtb16 %[wl], %[wv]\n\t"
        "sxtb16 %[wv], %[wv], ror #8\n\t"
        "smlad %[s0], %[wl], %[xl], %[s0]\n\t"
        "smlad %[s0], %[wv], %[xv], %[s0]\n\t"
        "ldr %[wv], [%[w], %[after]]\n\t"
        "sxtb16 %[wl], %[wv]\n\t"
        "sxtb16 %[wv], %[wv], ror #8\n\t"
        "smlad %[s1], %[wl], %[xl], %[s1]\n\t"
        "smlad %[s1], %[wv], %[xv], %[s1]\n\t"
        "ldr %[xv], [%[x]], #4\n\t"
        "ldr %[wv], [%[w]], #4\n\t"
        "sxtab16 %[xl], %[o2], %[xv]\n\t"
        "sxtab16 %[xv], %[o2], %[xv], ror #8\n\t"
        "sxtb16 %[wl], %[wv]\n\t"
        "sxtb16 %[wv], %[wv], ror #8\n\t"
        "smlad %[s0], %[wl], %[xl], %[s0]\n\t"
        "smlad %[s0], %[wv], %[xv], %[s0]\n\t"
        "ldr %[wv], [%[w], %[after]]\n\t"
        "sxtb16 %[wl], %[wv]\n\t"
        "sxtb16 %[wv], %[wv], ror #8\n\t"
        "smlad %[s1], %[wl], %[xl], %[s1]\n\t"
        "smlad %[s1], %[wv], %[xv], %[s1]\n\t"
        "subs %[n], %[n], #1\n\t"
        "bne 1b\n\t"
        : [x] "+&r"(x), [w] "+&r"(w0), [n] "+&r"(blocks), [s0] "+&r"(s0),
          [s1] "+&r"(s1), [xv] "=&r"(xv), [xl] "=&r"(xl), [wv] "=&r"(wv),
          [wl] "=&r"(wl)
        : [after] "r"(after), [o2] "r"(offset2)
        : "cc", "memory");
  }
  const int8_t* w1 = w0 + row_step;
  if (n & 4) {
    const uint32_t xv = Load4(x);
    const int32_t xl = Sxtab16(offset2, xv);
    const int32_t xh = Sxtab16Ror8(offset2, xv);
    uint32_t wv = Load4(w0);
    s0 = Smlad(Sxtb16(wv), xl, s0);
    s0 = Smlad(Sxtb16Ror8(wv), xh, s0);
    wv = Load4(w1);
    s1 = Smlad(Sxtb16(wv), xl, s1);
    s1 = Smlad(Sxtb16Ror8(wv), xh, s1);
    x += 4;
    w0 += 4;
    w1 += 4;
  }
  for (int i = n & 3; i != 0; --i) {
    const int32_t xi = *x++ + offset;
    s0 += *w0++ * xi;
    s1 += *w1++ * xi;
  }
  *acc0 = s0;
  *acc1 = s1;
}

HADS_ALWAYS_INLINE int32_t Dot1Row(const int8_t* x, const int8_t* w, int n,
                                   int32_t offset, int32_t offset2,
                                   int32_t s) {
  for (int i = n >> 2; i != 0; --i) {
    const uint32_t xv = Load4(x);
    const uint32_t wv = Load4(w);
    s = Smlad(Sxtb16(wv), Sxtab16(offset2, xv), s);
    s = Smlad(Sxtb16Ror8(wv), Sxtab16Ror8(offset2, xv), s);
    x += 4;
    w += 4;
  }
  for (int i = n & 3; i != 0; --i) s += *w++ * (*x++ + offset);
  return s;
}

// ---------------------------------------------------------------------------
// 1x1 convolution: out[p][oc] for `pixels` pixels whose inputs are
// `in_step` bytes apart (active prefix of `n` channels each) and whose
// outputs are `out_step` bytes apart; weight rows `w_step` bytes apart.

HADS_ALWAYS_INLINE int32_t SumInt8(const int8_t* w, int n) {
  const int32_t ones = 0x00010001;
  int32_t s = 0;
  for (int i = n >> 2; i != 0; --i) {
    const uint32_t wv = Load4(w);
    s = Smlad(Sxtb16(wv), ones, s);
    s = Smlad(Sxtb16Ror8(wv), ones, s);
    w += 4;
  }
  for (int i = n & 3; i != 0; --i) s += *w++;
  return s;
}

// acc[i][j] += sum_k x_i[k] * w_j[k] for two pixels (i) and two rows (j).
HADS_ALWAYS_INLINE void Block2x2(const int8_t* xa, const int8_t* xb,
                                 const int8_t* w0, const int8_t* w1, int n,
                                 int32_t* acc) {
  int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
  for (int i = n >> 2; i != 0; --i) {
    const uint32_t wa = Load4(w0);
    const uint32_t va = Load4(xa);
    const int32_t wal = Sxtb16(wa);
    const int32_t wah = Sxtb16Ror8(wa);
    const int32_t val = Sxtb16(va);
    const int32_t vah = Sxtb16Ror8(va);
    a00 = Smlad(wal, val, a00);
    a00 = Smlad(wah, vah, a00);
    const uint32_t wb = Load4(w1);
    const int32_t wbl = Sxtb16(wb);
    const int32_t wbh = Sxtb16Ror8(wb);
    a01 = Smlad(wbl, val, a01);
    a01 = Smlad(wbh, vah, a01);
    const uint32_t vb = Load4(xb);
    const int32_t vbl = Sxtb16(vb);
    const int32_t vbh = Sxtb16Ror8(vb);
    a10 = Smlad(wal, vbl, a10);
    a10 = Smlad(wah, vbh, a10);
    a11 = Smlad(wbl, vbl, a11);
    a11 = Smlad(wbh, vbh, a11);
    w0 += 4;
    w1 += 4;
    xa += 4;
    xb += 4;
  }
  for (int i = n & 3; i != 0; --i) {
    const int32_t x0 = *xa++, x1 = *xb++, k0 = *w0++, k1 = *w1++;
    a00 += x0 * k0;
    a01 += x0 * k1;
    a10 += x1 * k0;
    a11 += x1 * k1;
  }
  acc[0] = a00;
  acc[1] = a01;
  acc[2] = a10;
  acc[3] = a11;
}

// Block2x2 for the common case of the second pixel and the second row
// being the same distance `step` ahead (1x1 convolution of stride 1 on the
// nested layout: both are the full channel count). Hand-scheduled to keep
// all 14 values in registers at -Os and -O2 (22 instructions per 16 MACs).
HADS_ALWAYS_INLINE void Block2x2SameStep(const int8_t* x, const int8_t* w,
                                         int32_t step, int n, int32_t* acc) {
  int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
  int groups = n >> 2;
  if (groups > 0) {
    const int32_t after = step - 4;  // offset once the pointers moved on
    uint32_t wa, va, wb, t1, t2, t3;
    __asm__ volatile(
        "1:\n\t"
        "ldr %[wa], [%[w]], #4\n\t"
        "ldr %[va], [%[x]], #4\n\t"
        "sxtb16 %[t1], %[wa]\n\t"
        "sxtb16 %[t2], %[va]\n\t"
        "smlad %[a00], %[t1], %[t2], %[a00]\n\t"
        "sxtb16 %[wa], %[wa], ror #8\n\t"
        "sxtb16 %[va], %[va], ror #8\n\t"
        "smlad %[a00], %[wa], %[va], %[a00]\n\t"
        "ldr %[wb], [%[w], %[after]]\n\t"
        "sxtb16 %[t3], %[wb]\n\t"
        "smlad %[a01], %[t3], %[t2], %[a01]\n\t"
        "sxtb16 %[wb], %[wb], ror #8\n\t"
        "smlad %[a01], %[wb], %[va], %[a01]\n\t"
        "ldr %[va], [%[x], %[after]]\n\t"
        "sxtb16 %[t2], %[va]\n\t"
        "smlad %[a10], %[t1], %[t2], %[a10]\n\t"
        "smlad %[a11], %[t3], %[t2], %[a11]\n\t"
        "sxtb16 %[va], %[va], ror #8\n\t"
        "smlad %[a10], %[wa], %[va], %[a10]\n\t"
        "smlad %[a11], %[wb], %[va], %[a11]\n\t"
        "subs %[n], %[n], #1\n\t"
        "bne 1b\n\t"
        : [w] "+&r"(w), [x] "+&r"(x), [n] "+&r"(groups), [a00] "+&r"(a00),
          [a01] "+&r"(a01), [a10] "+&r"(a10), [a11] "+&r"(a11),
          [wa] "=&r"(wa), [va] "=&r"(va), [wb] "=&r"(wb), [t1] "=&r"(t1),
          [t2] "=&r"(t2), [t3] "=&r"(t3)
        : [after] "r"(after)
        : "cc", "memory");
  }
  for (int i = n & 3; i != 0; --i) {
    const int32_t x0 = x[0], x1 = x[step], k0 = w[0], k1 = w[step];
    a00 += x0 * k0;
    a01 += x0 * k1;
    a10 += x1 * k0;
    a11 += x1 * k1;
    ++x;
    ++w;
  }
  acc[0] = a00;
  acc[1] = a01;
  acc[2] = a10;
  acc[3] = a11;
}

void Pointwise(const int8_t* input, int in_step, int pixels, int n,
               const int8_t* weights, int w_step, int active_out,
               int32_t input_offset, const OutputStage& os, int8_t* output,
               int out_step) {
  int oc = 0;
  for (; oc + 2 <= active_out; oc += 2) {
    const int8_t* w0 = weights + oc * w_step;
    const int8_t* w1 = w0 + w_step;
    // sum((x + offset) * w) = sum(x * w) + offset * sum(w).
    const int32_t base0 = os.Bias(oc) + input_offset * SumInt8(w0, n);
    const int32_t base1 = os.Bias(oc + 1) + input_offset * SumInt8(w1, n);
    const int8_t* x = input;
    int8_t* out = output + oc;
    int p = 0;
    for (; p + 2 <= pixels; p += 2) {
      int32_t acc[4] = {base0, base1, base0, base1};
      if (in_step == w_step) {
        Block2x2SameStep(x, w0, w_step, n, acc);
      } else {
        Block2x2(x, x + in_step, w0, w1, n, acc);
      }
      out[0] = os.Out(acc[0], oc);
      out[1] = os.Out(acc[1], oc + 1);
      out[out_step] = os.Out(acc[2], oc);
      out[out_step + 1] = os.Out(acc[3], oc + 1);
      x += 2 * in_step;
      out += 2 * out_step;
    }
    if (p < pixels) {
      int32_t acc[4] = {base0, base1, base0, base1};
      Block2x2(x, x, w0, w1, n, acc);  // the same pixel twice
      out[0] = os.Out(acc[0], oc);
      out[1] = os.Out(acc[1], oc + 1);
    }
  }
  if (oc < active_out) {  // odd number of active output channels
    const int8_t* w0 = weights + oc * w_step;
    const int32_t offset2 = Splat16(input_offset);
    const int8_t* x = input;
    int8_t* out = output + oc;
    for (int p = 0; p < pixels; ++p) {
      out[0] = os.Out(Dot1Row(x, w0, n, input_offset, offset2, os.Bias(oc)),
                      oc);
      x += in_step;
      out += out_step;
    }
  }
}

// ---------------------------------------------------------------------------
// General convolution: int16 im2col columns.
//
// A column holds the input values (+ input offset) of one output pixel's
// receptive field as int16 lane pairs matching the weight widening: for
// each group of 4 values e0..e3, the word (e0, e2) then the word (e1, e3).
// Layouts:
// * all input channels active: the field is contiguous in the filter
//   (K = KH * KW * Cin values, one segment);
// * a prefix of the channels: one segment per tap of `active_in` values,
//   each padded to a multiple of 4 with zeros, weights `cin` apart.
// Padded taps (outside the image) are zeros.

struct Segments {
  int count;        // segments per column
  int length;       // values per segment
  int col_words;    // column words per segment (2 per group of 4 values)
  int w_stride;     // weight bytes between segments
};

HADS_ALWAYS_INLINE void CopyBytes(int8_t* dst, const int8_t* src, int n) {
  for (; n >= 4; n -= 4) {
    const uint32_t v = Load4(src);
    std::memcpy(dst, &v, 4);
    dst += 4;
    src += 4;
  }
  for (; n > 0; --n) *dst++ = *src++;
}

HADS_ALWAYS_INLINE void FillBytes(int8_t* dst, uint32_t fill4, int n) {
  for (; n >= 4; n -= 4) {
    std::memcpy(dst, &fill4, 4);
    dst += 4;
  }
  for (; n > 0; --n) *dst++ = static_cast<int8_t>(fill4);
}

// Widens `groups` groups of 4 int8 at `src` to column words at `dst`
// (two words per group, groups 4 words apart: the two columns of a pixel
// pair are interleaved so one pointer walks both).
HADS_ALWAYS_INLINE void Widen(uint32_t* dst, const int8_t* src, int groups,
                              int32_t offset2) {
  for (int g = groups; g != 0; --g) {
    const uint32_t v = Load4(src);
    src += 4;
    dst[0] = static_cast<uint32_t>(Sxtab16(offset2, v));
    dst[1] = static_cast<uint32_t>(Sxtab16Ror8(offset2, v));
    dst += 4;
  }
}

struct ConvContext {
  const ConvShape* shape;
  const int8_t* input;  // batch b
  int active_in;
  int32_t offset2;
  uint32_t fill4;       // four bytes of -input_offset (widen to 0)
  bool contiguous;      // all input channels active
  int k;                // values of the contiguous layout
  int k4;               // k rounded up to 4
  int8_t* gather;       // k4 bytes: the contiguous layout's int8 field
};

// Builds the column of output pixel (oy, ox) into `col` (the words of
// column a or b of the interleaved pair: base + 0 or base + 2).
void BuildColumn(const ConvContext& c, int oy, int ox, uint32_t* col) {
  const ConvShape& s = *c.shape;
  const int cin = s.in_channels;
  const int in_row = s.in_width * cin;
  const int in_y0 = oy * s.stride_height - s.pad_height;
  const int in_x0 = ox * s.stride_width - s.pad_width;
  const int fx_begin = in_x0 < 0 ? -in_x0 : 0;
  const int fx_end_raw = s.in_width - in_x0;
  const int fx_end = fx_end_raw < s.filter_width ? fx_end_raw : s.filter_width;
  if (c.contiguous) {
    // Gather int8 (padding = -offset, which widens to 0), then widen.
    int8_t* bytes = c.gather;
    const int tap_row = s.filter_width * cin;
    int8_t* dst = bytes;
    for (int fy = 0; fy < s.filter_height; ++fy) {
      const int y = in_y0 + fy;
      if (y < 0 || y >= s.in_height || fx_begin >= fx_end) {
        FillBytes(dst, c.fill4, tap_row);
      } else {
        FillBytes(dst, c.fill4, fx_begin * cin);
        CopyBytes(dst + fx_begin * cin,
                  c.input + y * in_row + (in_x0 + fx_begin) * cin,
                  (fx_end - fx_begin) * cin);
        FillBytes(dst + fx_end * cin, c.fill4,
                  (s.filter_width - fx_end) * cin);
      }
      dst += tap_row;
    }
    FillBytes(dst, c.fill4, c.k4 - c.k);
    Widen(col, bytes, c.k4 >> 2, c.offset2);
    return;
  }
  const int n = c.active_in;
  const int groups = n >> 2;
  const int tail = n & 3;
  const int words = ((n + 3) >> 2) * 4;  // both columns' words of a tap
  uint32_t* dst = col;
  for (int fy = 0; fy < s.filter_height; ++fy) {
    const int y = in_y0 + fy;
    const bool row_inside = y >= 0 && y < s.in_height;
    const int8_t* x = row_inside ? c.input + y * in_row : c.input;
    for (int fx = 0; fx < s.filter_width; ++fx) {
      if (!row_inside || fx < fx_begin || fx >= fx_end) {
        for (int i = 0; i < words; i += 4) {
          dst[i] = 0;
          dst[i + 1] = 0;
        }
      } else {
        const int8_t* src = x + (in_x0 + fx) * cin;
        Widen(dst, src, groups, c.offset2);
        if (tail != 0) {
          const uint32_t v = LoadPartial(src + 4 * groups, tail, c.fill4);
          dst[4 * groups] = static_cast<uint32_t>(Sxtab16(c.offset2, v));
          dst[4 * groups + 1] =
              static_cast<uint32_t>(Sxtab16Ror8(c.offset2, v));
        }
      }
      dst += words;
    }
  }
}

// One group of 4 values of both columns (interleaved words q[0..3]) times
// two weight words.
HADS_ALWAYS_INLINE void Group2x2(uint32_t wa, uint32_t wb, const uint32_t* q,
                                 int32_t* a00, int32_t* a01, int32_t* a10,
                                 int32_t* a11) {
  const int32_t wal = Sxtb16(wa);
  const int32_t wah = Sxtb16Ror8(wa);
  const int32_t wbl = Sxtb16(wb);
  const int32_t wbh = Sxtb16Ror8(wb);
  *a00 = Smlad(wal, static_cast<int32_t>(q[0]), *a00);
  *a00 = Smlad(wah, static_cast<int32_t>(q[1]), *a00);
  *a01 = Smlad(wbl, static_cast<int32_t>(q[0]), *a01);
  *a01 = Smlad(wbh, static_cast<int32_t>(q[1]), *a01);
  *a10 = Smlad(wal, static_cast<int32_t>(q[2]), *a10);
  *a10 = Smlad(wah, static_cast<int32_t>(q[3]), *a10);
  *a11 = Smlad(wbl, static_cast<int32_t>(q[2]), *a11);
  *a11 = Smlad(wbh, static_cast<int32_t>(q[3]), *a11);
}

// n >= 1 groups: weights of row 0 at p (row 1 at p + row_step), columns
// at q. Hand-scheduled so that -Os and -O2 keep all 14 values in registers
// (18 instructions per 16 MACs); advances p and q.
HADS_ALWAYS_INLINE void Groups2x2(const int8_t** p, int32_t row_step,
                                  const uint32_t** q, int n, int32_t* a00,
                                  int32_t* a01, int32_t* a10, int32_t* a11) {
  const int8_t* pp = *p;
  const uint32_t* qq = *q;
  const int32_t step = row_step - 4;  // after the post-increment
  int32_t x00 = *a00, x01 = *a01, x10 = *a10, x11 = *a11;
  uint32_t wa, wb, wal, wbl, c0, c1;
  __asm__ volatile(
      "1:\n\t"
      "ldr %[wa], [%[p]], #4\n\t"
      "ldr %[wb], [%[p], %[step]]\n\t"
      "ldrd %[c0], %[c1], [%[q]], #8\n\t"
      "sxtb16 %[wal], %[wa]\n\t"
      "sxtb16 %[wa], %[wa], ror #8\n\t"
      "sxtb16 %[wbl], %[wb]\n\t"
      "sxtb16 %[wb], %[wb], ror #8\n\t"
      "smlad %[x00], %[wal], %[c0], %[x00]\n\t"
      "smlad %[x00], %[wa], %[c1], %[x00]\n\t"
      "smlad %[x01], %[wbl], %[c0], %[x01]\n\t"
      "smlad %[x01], %[wb], %[c1], %[x01]\n\t"
      "ldrd %[c0], %[c1], [%[q]], #8\n\t"
      "smlad %[x10], %[wal], %[c0], %[x10]\n\t"
      "smlad %[x10], %[wa], %[c1], %[x10]\n\t"
      "smlad %[x11], %[wbl], %[c0], %[x11]\n\t"
      "smlad %[x11], %[wb], %[c1], %[x11]\n\t"
      "subs %[n], %[n], #1\n\t"
      "bne 1b\n\t"
      : [p] "+&r"(pp), [q] "+&r"(qq), [n] "+&r"(n), [x00] "+&r"(x00),
        [x01] "+&r"(x01), [x10] "+&r"(x10), [x11] "+&r"(x11),
        [wa] "=&r"(wa), [wb] "=&r"(wb), [wal] "=&r"(wal), [wbl] "=&r"(wbl),
        [c0] "=&r"(c0), [c1] "=&r"(c1)
      : [step] "r"(step)
      : "cc", "memory");
  *p = pp;
  *q = qq;
  *a00 = x00;
  *a01 = x01;
  *a10 = x10;
  *a11 = x11;
}

// Outputs of all active channels for the two pixels of the interleaved
// columns `cols`. A segment's last group may read weight bytes past the
// segment (they meet zero lanes); it does so only where they lie inside
// the filter, else it builds the word from the segment's own bytes.
void MatMulColumns(const int8_t* filter, int f_size, int filter_bytes,
                   int active_out, const Segments& seg, const uint32_t* cols,
                   const OutputStage& os, int8_t* out_a, int8_t* out_b) {
  const int groups = seg.length >> 2;
  const int tail = seg.length & 3;
  const int all_groups = groups + (tail != 0 ? 1 : 0);
  const int last_read =
      (seg.count - 1) * seg.w_stride + 4 * all_groups;  // end of a row's reads
  int oc = 0;
  for (; oc < active_out; oc += 2) {
    // An odd last channel runs as a pair with itself (output written once).
    const int oc1 = oc + 1 < active_out ? oc + 1 : oc;
    const int8_t* w0 = filter + oc * f_size;
    const int32_t row_step = (oc1 - oc) * f_size;
    const bool tail_in_bounds = oc1 * f_size + last_read <= filter_bytes;
    int32_t a00 = os.Bias(oc), a01 = os.Bias(oc1);
    int32_t a10 = a00, a11 = a01;
    const uint32_t* q = cols;
    for (int sgm = 0; sgm < seg.count; ++sgm) {
      const int8_t* p = w0 + sgm * seg.w_stride;
      if (tail_in_bounds) {
        Groups2x2(&p, row_step, &q, all_groups, &a00, &a01, &a10, &a11);
        continue;
      }
      if (groups > 0) {
        Groups2x2(&p, row_step, &q, groups, &a00, &a01, &a10, &a11);
      }
      if (tail != 0) {
        Group2x2(LoadPartial(p, tail, 0), LoadPartial(p + row_step, tail, 0),
                 q, &a00, &a01, &a10, &a11);
        q += 4;
      }
    }
    out_a[oc] = os.Out(a00, oc);
    out_b[oc] = os.Out(a10, oc);
    if (oc1 != oc) {
      out_a[oc1] = os.Out(a01, oc1);
      out_b[oc1] = os.Out(a11, oc1);
    }
  }
}

int RoundUp4(int n) { return (n + 3) & ~3; }

// Values of one column, enough for both layouts (the per-tap one is the
// larger).
int32_t ColumnValues(const ConvShape& s) {
  return s.filter_height * s.filter_width * RoundUp4(s.in_channels);
}

// Depthwise: four channels over `taps` horizontally adjacent taps (input
// and weights both `cin` bytes per tap; weights at x + w_minus_x).
// Hand-scheduled (13 values in registers at -Os and -O2).
HADS_ALWAYS_INLINE void DepthwiseTaps4(const int8_t* x, int32_t w_minus_x,
                                       int32_t cin, int taps, int32_t offset2,
                                       int32_t* acc) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  uint32_t xv, wv, t, u;
  __asm__ volatile(
      "1:\n\t"
      "ldr %[xv], [%[x]]\n\t"
      "ldr %[wv], [%[x], %[d]]\n\t"
      "add %[x], %[x], %[cin]\n\t"
      "sxtab16 %[t], %[o2], %[xv]\n\t"
      "sxtb16 %[u], %[wv]\n\t"
      "smlabb %[a0], %[t], %[u], %[a0]\n\t"
      "smlatt %[a2], %[t], %[u], %[a2]\n\t"
      "sxtab16 %[t], %[o2], %[xv], ror #8\n\t"
      "sxtb16 %[u], %[wv], ror #8\n\t"
      "smlabb %[a1], %[t], %[u], %[a1]\n\t"
      "smlatt %[a3], %[t], %[u], %[a3]\n\t"
      "subs %[n], %[n], #1\n\t"
      "bne 1b\n\t"
      : [x] "+&r"(x), [n] "+&r"(taps), [a0] "+&r"(a0), [a1] "+&r"(a1),
        [a2] "+&r"(a2), [a3] "+&r"(a3), [xv] "=&r"(xv), [wv] "=&r"(wv),
        [t] "=&r"(t), [u] "=&r"(u)
      : [d] "r"(w_minus_x), [cin] "r"(cin), [o2] "r"(offset2)
      : "cc", "memory");
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
}

}  // namespace

// ---------------------------------------------------------------------------

Status FullyConnectedInt8(const FullyConnectedShape& shape,
                          const QuantizedParams& params, int active_in,
                          int active_out, const int8_t* input,
                          const int8_t* weights, int8_t* output) {
  const OutputStage os(params);
  const int cin = shape.in_channels;
  const int row = shape.in_spatial * cin;  // full row: weights and input
  // With every channel active the positions are one contiguous segment.
  const bool contiguous = active_in == cin;
  const int segments = contiguous ? 1 : shape.in_spatial;
  const int length = contiguous ? row : active_in;
  const int32_t offset = params.input_offset;
  const int32_t offset2 = Splat16(offset);
  const int8_t fill = FillValue(params.output_offset);
  for (int b = 0; b < shape.batches; ++b) {
    const int8_t* x_row = input + b * row;
    int8_t* out = output + b * shape.out_channels;
    int oc = 0;
    for (; oc + 2 <= active_out; oc += 2) {
      const int8_t* w0 = weights + oc * row;
      int32_t acc0 = os.Bias(oc);
      int32_t acc1 = os.Bias(oc + 1);
      for (int p = 0; p < segments; ++p) {
        Dot2Rows(x_row + p * cin, w0 + p * cin, row, length, offset, offset2,
                 &acc0, &acc1);
      }
      out[oc] = os.Out(acc0, oc);
      out[oc + 1] = os.Out(acc1, oc + 1);
    }
    if (oc < active_out) {
      const int8_t* w0 = weights + oc * row;
      int32_t acc = os.Bias(oc);
      for (int p = 0; p < segments; ++p) {
        acc = Dot1Row(x_row + p * cin, w0 + p * cin, length, offset, offset2,
                      acc);
      }
      out[oc] = os.Out(acc, oc);
    }
    for (oc = active_out; oc < shape.out_channels; ++oc) out[oc] = fill;
  }
  return kOk;
}

int32_t Conv2DInt8ScratchBytes(const ConvShape& s) {
  if (s.filter_height == 1 && s.filter_width == 1 && s.pad_height == 0 &&
      s.pad_width == 0) {
    return 0;
  }
  // Two columns of int16 values, then the int8 gather of one.
  return 5 * ColumnValues(s);
}

Status Conv2DInt8(const ConvShape& s, const QuantizedParams& params,
                  int active_in, int active_out, const int8_t* input,
                  const int8_t* filter, int8_t* output, void* scratch,
                  int32_t scratch_bytes) {
  const OutputStage os(params);
  const int cin = s.in_channels;
  const int cout = s.out_channels;
  const int8_t fill = FillValue(params.output_offset);
  const int pixels = s.out_height * s.out_width;
  const bool one_by_one = s.filter_height == 1 && s.filter_width == 1 &&
                          s.pad_height == 0 && s.pad_width == 0 &&
                          (s.out_height - 1) * s.stride_height < s.in_height &&
                          (s.out_width - 1) * s.stride_width < s.in_width;
  if (one_by_one) {
    for (int b = 0; b < s.batches; ++b) {
      const int8_t* in_b = input + b * s.in_height * s.in_width * cin;
      int8_t* out_b = output + b * pixels * cout;
      if (s.stride_height == 1 && s.stride_width == 1 &&
          s.out_width == s.in_width) {
        Pointwise(in_b, cin, pixels, active_in, filter, cin, active_out,
                  params.input_offset, os, out_b, cout);
      } else {
        for (int oy = 0; oy < s.out_height; ++oy) {
          Pointwise(in_b + oy * s.stride_height * s.in_width * cin,
                    s.stride_width * cin, s.out_width, active_in, filter, cin,
                    active_out, params.input_offset, os,
                    out_b + oy * s.out_width * cout, cout);
        }
      }
      if (active_out < cout) {
        for (int p = 0; p < pixels; ++p) {
          for (int oc = active_out; oc < cout; ++oc) out_b[p * cout + oc] = fill;
        }
      }
    }
    return kOk;
  }

  const int32_t needed = dsp::Conv2DInt8ScratchBytes(s);
  if (scratch == nullptr || scratch_bytes < needed ||
      (reinterpret_cast<uintptr_t>(scratch) & 3u) != 0) {
    return kErrNullPointer;
  }
  ConvContext c;
  c.shape = &s;
  c.active_in = active_in;
  c.offset2 = Splat16(params.input_offset);
  const uint32_t fill_byte =
      static_cast<uint8_t>(static_cast<int8_t>(-params.input_offset));
  c.fill4 = fill_byte * 0x01010101u;
  c.contiguous = active_in == cin;
  c.k = s.filter_height * s.filter_width * cin;
  c.k4 = RoundUp4(c.k);
  Segments seg;
  if (c.contiguous) {
    seg.count = 1;
    seg.length = c.k;
    seg.col_words = c.k4;
    seg.w_stride = 0;
  } else {
    seg.count = s.filter_height * s.filter_width;
    seg.length = active_in;
    seg.col_words = RoundUp4(active_in);
    seg.w_stride = cin;
  }
  uint32_t* cols = static_cast<uint32_t*>(scratch);
  c.gather = reinterpret_cast<int8_t*>(cols) + 4 * ColumnValues(s);
  const int f_size = c.k;
  const int filter_bytes = cout * f_size;
  for (int b = 0; b < s.batches; ++b) {
    c.input = input + b * s.in_height * s.in_width * cin;
    int8_t* out_b = output + b * pixels * cout;
    int pending = -1;  // pixel whose column is in col_a
    for (int p = 0; p < pixels; ++p) {
      const int oy = p / s.out_width;
      const int ox = p - oy * s.out_width;
      if (pending < 0) {
        BuildColumn(c, oy, ox, cols);
        pending = p;
        continue;
      }
      BuildColumn(c, oy, ox, cols + 2);
      MatMulColumns(filter, f_size, filter_bytes, active_out, seg, cols, os,
                    out_b + pending * cout, out_b + p * cout);
      pending = -1;
    }
    if (pending >= 0) {  // odd pixel count: the last pixel twice
      const int oy = pending / s.out_width;
      BuildColumn(c, oy, pending - oy * s.out_width, cols + 2);
      int8_t* out = out_b + pending * cout;
      MatMulColumns(filter, f_size, filter_bytes, active_out, seg, cols, os,
                    out, out);
    }
    if (active_out < cout) {
      for (int p = 0; p < pixels; ++p) {
        for (int oc = active_out; oc < cout; ++oc) out_b[p * cout + oc] = fill;
      }
    }
  }
  return kOk;
}

Status DepthwiseConv2DInt8(const ConvShape& s, const QuantizedParams& params,
                           int active_in, const int8_t* input,
                           const int8_t* filter, int8_t* output) {
  const OutputStage os(params);
  const int cin = s.in_channels;  // == out_channels (multiplier 1)
  const int in_row = s.in_width * cin;
  const int f_row = s.filter_width * cin;
  const int32_t offset = params.input_offset;
  const int32_t offset2 = Splat16(offset);
  const int8_t fill = FillValue(params.output_offset);
  const int groups = active_in >> 2;
  for (int b = 0; b < s.batches; ++b) {
    const int8_t* in_b = input + b * s.in_height * in_row;
    for (int oy = 0; oy < s.out_height; ++oy) {
      const int in_y0 = oy * s.stride_height - s.pad_height;
      const int fy_begin = in_y0 < 0 ? -in_y0 : 0;
      const int fy_end_raw = s.in_height - in_y0;
      const int fy_end =
          fy_end_raw < s.filter_height ? fy_end_raw : s.filter_height;
      for (int ox = 0; ox < s.out_width; ++ox) {
        const int in_x0 = ox * s.stride_width - s.pad_width;
        const int fx_begin = in_x0 < 0 ? -in_x0 : 0;
        const int fx_end_raw = s.in_width - in_x0;
        const int fx_end =
            fx_end_raw < s.filter_width ? fx_end_raw : s.filter_width;
        int8_t* out =
            output + ((b * s.out_height + oy) * s.out_width + ox) * cin;
        int taps_x = fx_end - fx_begin;
        int fy_stop = fy_end;
        if (taps_x <= 0 || fy_end <= fy_begin) {  // no tap inside the image
          taps_x = 0;
          fy_stop = fy_begin;
        }
        // Only dereferenced when a tap lies inside the image.
        const int8_t* x0 =
            taps_x > 0 ? in_b + (in_y0 + fy_begin) * in_row +
                             (in_x0 + fx_begin) * cin
                       : input;
        const int8_t* w_start = filter + fy_begin * f_row + fx_begin * cin;
        const int x_skip = in_row - taps_x * cin;
        const int w_skip = f_row - taps_x * cin;
        for (int g = 0; g < groups; ++g) {
          const int c = 4 * g;
          int32_t acc[4] = {os.Bias(c), os.Bias(c + 1), os.Bias(c + 2),
                            os.Bias(c + 3)};
          const int8_t* x = x0 + c;
          int32_t w_minus_x = static_cast<int32_t>(
              reinterpret_cast<uintptr_t>(w_start + c) -
              reinterpret_cast<uintptr_t>(x));
          for (int fy = fy_begin; fy < fy_stop; ++fy) {
            DepthwiseTaps4(x, w_minus_x, cin, taps_x, offset2, acc);
            // Next filter row: the input moves a row, the weights f_row.
            x += in_row;
            w_minus_x += f_row - in_row;
          }
          out[c] = os.Out(acc[0], c);
          out[c + 1] = os.Out(acc[1], c + 1);
          out[c + 2] = os.Out(acc[2], c + 2);
          out[c + 3] = os.Out(acc[3], c + 3);
        }
        for (int c = 4 * groups; c < active_in; ++c) {
          int32_t acc = os.Bias(c);
          const int8_t* x = x0 + c;
          const int8_t* w = w_start + c;
          for (int fy = fy_begin; fy < fy_stop; ++fy) {
            for (int i = taps_x; i != 0; --i) {
              acc += *w * (*x + offset);
              x += cin;
              w += cin;
            }
            x += x_skip;
            w += w_skip;
          }
          out[c] = os.Out(acc, c);
        }
        for (int c = active_in; c < cin; ++c) out[c] = fill;
      }
    }
  }
  return kOk;
}

}  // namespace dsp
}  // namespace hads

#endif  // HADS_OPTIMIZED_KERNELS
