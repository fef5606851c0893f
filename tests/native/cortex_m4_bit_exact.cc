// Bare-metal check on an emulated Cortex-M4 (QEMU mps2-an386, built by
// tests/native/test_cortex_m4_bit_exact.py with benchmarks/cortex_m4/'s
// startup, semihosting and linker script): the optimized int8 kernels that
// hads::FullyConnectedInt8 / Conv2DInt8 / DepthwiseConv2DInt8 run on a DSP
// core against the portable hads::reference kernels, bit for bit, on
//  * every subnetwork of the DNN S, CNN S and DS-CNN S layers (the widths
//    of benchmarks/cortex_m4.py, plus width 1 and odd widths) and of the
//    Arduino examples' nested DS-CNN (8x8x1, input zero point -128), and
//  * random shapes: odd widths, width 1, widths not a multiple of 4,
//    several input positions (flatten), batches, strides, SAME / VALID
//    padding, depth multipliers, fused activation ranges, no bias, left and
//    right shifts, every int8 zero point.
// Output buffers carry canaries past their end. Prints one line per family
//   GROUP name=<g> cases=<n>
// and MISMATCH lines with the case on any difference, then DONE.
#include <stdint.h>
#include <string.h>

#include "hads_kernels.h"
#include "semihost.h"

#if !HADS_OPTIMIZED_KERNELS
#error "build for a core with the DSP extension (e.g. -mcpu=cortex-m4)"
#endif

namespace {

uint32_t g_rng = 0x9E3779B9u;
uint32_t Next() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 17;
  g_rng ^= g_rng << 5;
  return g_rng;
}
int Uniform(int lo, int hi) {  // inclusive
  return lo + static_cast<int>(Next() % static_cast<uint32_t>(hi - lo + 1));
}

constexpr int kMaxWeights = 80 * 1024;
constexpr int kMaxActivations = 24 * 1024;
constexpr int kMaxChannels = 512;
constexpr int kCanary = 16;

int8_t g_weights[kMaxWeights];
int8_t g_input[kMaxActivations];
int8_t g_out_ref[kMaxActivations + kCanary];
int8_t g_out_opt[kMaxActivations + kCanary];
int32_t g_mult[kMaxChannels], g_shift[kMaxChannels], g_bias[kMaxChannels];
uint32_t g_scratch[8 * 1024];

int g_failures = 0;
int g_force_input_offset = 1000;  // 1000: random

void Fill(int8_t* p, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<int8_t>(Next());
}

// Requantization that keeps outputs spread over the int8 range for sums of
// `terms` products.
hads::QuantizedParams RandomParams(int out_channels, int terms) {
  int log2_acc = 14;  // |(x + offset) * w| up to 2^15, summed over terms
  for (int t = terms; t > 1; t >>= 2) ++log2_acc;
  for (int c = 0; c < out_channels; ++c) {
    g_mult[c] = static_cast<int32_t>((1u << 30) + (Next() & 0x3FFFFFFFu));
    g_shift[c] = Uniform(-log2_acc + 4, -log2_acc + 9);
    if (Uniform(0, 15) == 0) g_shift[c] = Uniform(0, 3);  // left shifts
    g_bias[c] = static_cast<int32_t>(Next() % 40001u) - 20000;
  }
  hads::QuantizedParams p;
  p.input_offset = Uniform(-127, 128);
  if (g_force_input_offset != 1000) p.input_offset = g_force_input_offset;
  p.output_offset = Uniform(-128, 127);
  const int kind = Uniform(0, 3);
  p.act_min = -128;
  p.act_max = 127;
  if (kind == 1) p.act_min = Uniform(-128, 0);                 // ReLU-like
  if (kind == 2) { p.act_min = Uniform(-128, -20); p.act_max = Uniform(0, 127); }
  if (kind == 3) { p.act_min = Uniform(-128, 100); p.act_max = p.act_min + Uniform(0, 27); }
  p.output_multiplier = g_mult;
  p.output_shift = g_shift;
  p.bias = Uniform(0, 7) == 0 ? nullptr : g_bias;
  return p;
}

void Report(const char* kind, int a, int b, int c, int d, int e, int f) {
  ++g_failures;
  semihost_write0("MISMATCH ");
  semihost_write0(kind);
  const int v[6] = {a, b, c, d, e, f};
  for (int i = 0; i < 6; ++i) {
    semihost_write0(" ");
    semihost_write_int(v[i]);
  }
  semihost_write0("\n");
}

bool SameOutputs(int n) {
  return memcmp(g_out_ref, g_out_opt, static_cast<size_t>(n + kCanary)) == 0;
}

void PrepareOutputs(int n) {
  memset(g_out_ref, 0x5A, static_cast<size_t>(n + kCanary));
  memset(g_out_opt, 0x5A, static_cast<size_t>(n + kCanary));
}

// ---------------------------------------------------------------------------

void CheckFc(int batches, int spatial, int cin, int cout, int active_in,
             int active_out) {
  hads::FullyConnectedShape s = {batches, spatial, cin, cout};
  const int row = spatial * cin;
  Fill(g_weights, cout * row);
  Fill(g_input, batches * row);
  const hads::QuantizedParams p = RandomParams(cout, spatial * active_in);
  const int n = batches * cout;
  PrepareOutputs(n);
  const hads::Status a = hads::reference::FullyConnectedInt8(
      s, p, active_in, active_out, g_input, g_weights, g_out_ref);
  const hads::Status b = hads::FullyConnectedInt8(s, p, active_in, active_out,
                                                  g_input, g_weights, g_out_opt);
  if (a != hads::kOk || a != b || !SameOutputs(n)) {
    Report("fc", batches, spatial, cin, cout, active_in, active_out);
  }
}

bool MakeShape(int batches, int h, int w, int cin, int kh, int kw, int cout,
               int sh, int sw, hads::Padding pad, int mult,
               hads::ConvShape* s) {
  return hads::MakeConvShape(batches, h, w, cin, kh, kw, cout, sh, sw, pad,
                             mult, s) == hads::kOk;
}

void CheckConv(const hads::ConvShape& s, int active_in, int active_out) {
  Fill(g_weights, s.out_channels * s.filter_height * s.filter_width *
                      s.in_channels);
  Fill(g_input, s.batches * s.in_height * s.in_width * s.in_channels);
  const hads::QuantizedParams p = RandomParams(
      s.out_channels, s.filter_height * s.filter_width * active_in);
  const int n = s.batches * s.out_height * s.out_width * s.out_channels;
  const int32_t scratch = hads::Conv2DInt8ScratchBytes(s);
  if (scratch > static_cast<int32_t>(sizeof(g_scratch))) {
    Report("conv_scratch", scratch, 0, 0, 0, 0, 0);
    return;
  }
  PrepareOutputs(n);
  const hads::Status a = hads::reference::Conv2DInt8(
      s, p, active_in, active_out, g_input, g_weights, g_out_ref);
  const hads::Status b = hads::Conv2DInt8(s, p, active_in, active_out, g_input,
                                          g_weights, g_out_opt, g_scratch,
                                          scratch);
  if (a != hads::kOk || a != b || !SameOutputs(n)) {
    Report("conv", s.in_height * 1000 + s.in_width, s.in_channels,
           s.filter_height * 100 + s.filter_width,
           s.stride_height * 100 + s.stride_width, active_in, active_out);
  }
}

void CheckDepthwise(const hads::ConvShape& s, int active_in) {
  Fill(g_weights, s.filter_height * s.filter_width * s.out_channels);
  Fill(g_input, s.batches * s.in_height * s.in_width * s.in_channels);
  const hads::QuantizedParams p =
      RandomParams(s.out_channels, s.filter_height * s.filter_width);
  const int n = s.batches * s.out_height * s.out_width * s.out_channels;
  PrepareOutputs(n);
  const hads::Status a = hads::reference::DepthwiseConv2DInt8(
      s, p, active_in, g_input, g_weights, g_out_ref);
  const hads::Status b = hads::DepthwiseConv2DInt8(s, p, active_in, g_input,
                                                   g_weights, g_out_opt);
  if (a != hads::kOk || a != b || !SameOutputs(n)) {
    Report("depthwise", s.in_height * 1000 + s.in_width, s.in_channels,
           s.filter_height * 100 + s.filter_width,
           s.stride_height * 100 + s.stride_width, s.depth_multiplier,
           active_in);
  }
}

void Group(const char* name, int cases) {
  semihost_write0("GROUP name=");
  semihost_write0(name);
  semihost_write0(" cases=");
  semihost_write_int(cases);
  semihost_write0("\n");
}

// Subnetwork widths: benchmarks/cortex_m4.py's (about 100/75/50/25 % MACs)
// and a few more, down to 1.
const int kDnnWidths[] = {144, 116, 85, 48, 31, 1};
const int kDsWidths[] = {64, 54, 43, 28, 7, 1};
const int kCnnConv1[] = {28, 24, 20, 14, 5, 1};
const int kCnnConv2[] = {30, 26, 21, 15, 3, 1};
const int kCnnLinear[] = {16, 14, 11, 8, 2, 1};
const int kCnnFc[] = {128, 111, 90, 64, 13, 1};

int CheckFamilies() {
  int cases = 0;
  for (int k = 0; k < 6; ++k) {  // DNN S: 250 (25x10) and 490 (49x10) inputs
    const int h = kDnnWidths[k];
    CheckFc(1, 1, 250, 144, 250, h);
    CheckFc(1, 1, 490, 144, 490, h);
    CheckFc(1, 1, 144, 144, h, h);
    CheckFc(1, 1, 144, 12, h, 12);
    cases += 4;
  }
  for (int k = 0; k < 6; ++k) {  // DS-CNN S
    const int w = kDsWidths[k];
    hads::ConvShape s;
    if (MakeShape(1, 49, 10, 1, 10, 4, 64, 2, 2, hads::kPaddingSame, 1, &s)) {
      CheckConv(s, 1, w);
      ++cases;
    }
    if (MakeShape(1, 25, 5, 64, 3, 3, 64, 1, 1, hads::kPaddingSame, 1, &s)) {
      CheckDepthwise(s, w);
      ++cases;
    }
    if (MakeShape(1, 25, 5, 64, 1, 1, 64, 1, 1, hads::kPaddingSame, 1, &s)) {
      CheckConv(s, w, w);
      ++cases;
    }
    CheckFc(1, 1, 64, 12, w, 12);
    ++cases;
  }
  for (int k = 0; k < 6; ++k) {  // CNN S
    hads::ConvShape s;
    if (MakeShape(1, 49, 10, 1, 10, 4, 28, 1, 1, hads::kPaddingValid, 1, &s)) {
      CheckConv(s, 1, kCnnConv1[k]);
      ++cases;
    }
    if (MakeShape(1, 40, 7, 28, 10, 4, 30, 2, 1, hads::kPaddingValid, 1, &s)) {
      CheckConv(s, kCnnConv1[k], kCnnConv2[k]);
      ++cases;
    }
    CheckFc(1, 16 * 4, 30, 16, kCnnConv2[k], kCnnLinear[k]);
    CheckFc(1, 1, 16, 128, kCnnLinear[k], kCnnFc[k]);
    CheckFc(1, 1, 128, 12, kCnnFc[k], 12);
    cases += 3;
  }
  return cases;
}

int RandomWidth(int full) {
  switch (Uniform(0, 3)) {
    case 0: return full;
    case 1: return 1;
    default: return Uniform(1, full);
  }
}

int CheckRandomFc(int count) {
  for (int i = 0; i < count; ++i) {
    const int batches = Uniform(1, 3);
    const int spatial = Uniform(0, 2) == 0 ? Uniform(2, 9) : 1;
    const int cin = Uniform(1, spatial > 1 ? 40 : 300);
    const int cout = Uniform(1, 70);
    CheckFc(batches, spatial, cin, cout, RandomWidth(cin), RandomWidth(cout));
  }
  return count;
}

int CheckRandomConv(int count) {
  int done = 0;
  while (done < count) {
    const bool pointwise = Uniform(0, 2) == 0;
    const int kh = pointwise ? 1 : Uniform(1, 5);
    const int kw = pointwise ? 1 : Uniform(1, 5);
    const int cin = Uniform(1, 40);
    const int cout = Uniform(1, 40);
    const int h = Uniform(kh, 12), w = Uniform(kw, 12);
    const hads::Padding pad =
        Uniform(0, 1) ? hads::kPaddingSame : hads::kPaddingValid;
    hads::ConvShape s;
    if (!MakeShape(Uniform(1, 2), h, w, cin, kh, kw, cout, Uniform(1, 3),
                   Uniform(1, 3), pad, 1, &s)) {
      continue;
    }
    if (s.batches * s.out_height * s.out_width * cout > kMaxActivations ||
        cout * kh * kw * cin > kMaxWeights) {
      continue;
    }
    CheckConv(s, RandomWidth(cin), RandomWidth(cout));
    ++done;
  }
  return done;
}

int CheckRandomDepthwise(int count) {
  int done = 0;
  while (done < count) {
    const int kh = Uniform(1, 5), kw = Uniform(1, 5);
    const int cin = Uniform(1, 70);
    const int mult = Uniform(0, 3) == 0 ? Uniform(2, 3) : 1;
    const int h = Uniform(kh, 12), w = Uniform(kw, 12);
    const hads::Padding pad =
        Uniform(0, 1) ? hads::kPaddingSame : hads::kPaddingValid;
    hads::ConvShape s;
    if (!MakeShape(Uniform(1, 2), h, w, cin, kh, kw, cin * mult, Uniform(1, 3),
                   Uniform(1, 3), pad, mult, &s)) {
      continue;
    }
    if (s.batches * s.out_height * s.out_width * s.out_channels >
        kMaxActivations) {
      continue;
    }
    CheckDepthwise(s, RandomWidth(cin));
    ++done;
  }
  return done;
}

}  // namespace

// The Arduino examples' nested DS-CNN (8x8x1 digits), input zero point -128.
int CheckDigits() {
  int cases = 0;
  g_force_input_offset = 128;
  const int w1[] = {16, 12, 8, 4}, w2[] = {24, 18, 12, 6};
  for (int k = 0; k < 4; ++k) {
    hads::ConvShape s;
    MakeShape(1, 8, 8, 1, 3, 3, 16, 1, 1, hads::kPaddingSame, 1, &s);
    CheckConv(s, 1, w1[k]);
    MakeShape(1, 8, 8, 16, 3, 3, 16, 1, 1, hads::kPaddingSame, 1, &s);
    CheckDepthwise(s, w1[k]);
    MakeShape(1, 8, 8, 16, 1, 1, 24, 1, 1, hads::kPaddingSame, 1, &s);
    CheckConv(s, w1[k], w2[k]);
    MakeShape(1, 8, 8, 24, 3, 3, 24, 2, 2, hads::kPaddingSame, 1, &s);
    CheckDepthwise(s, w2[k]);
    MakeShape(1, 4, 4, 24, 1, 1, 24, 1, 1, hads::kPaddingSame, 1, &s);
    CheckConv(s, w2[k], w2[k]);
    CheckFc(1, 1, 24, 10, w2[k], 10);
    cases += 6;
  }
  g_force_input_offset = 1000;
  return cases;
}

int main() {
  Group("digits", CheckDigits());
  Group("families", CheckFamilies());
  Group("random_fully_connected", CheckRandomFc(150));
  Group("random_conv", CheckRandomConv(150));
  Group("random_depthwise", CheckRandomDepthwise(150));
  semihost_write0(g_failures == 0 ? "DONE ok\n" : "DONE failures\n");
  return g_failures == 0 ? 0 : 1;
}
