/* Copyright 2026 The hads_keras Authors. Licensed under the Apache License 2.0.

Bare-metal benchmark of the portable HADS kernels (tflm_ops/hads_kernels.*)
on an emulated Cortex-M4 (QEMU mps2-an386, -icount shift=0: 1 instruction per
ns of virtual time, timer ticks every 40 instructions; see timer.h).

Two nested int8 models shaped like the paper's keyword-spotting networks
(Hello Edge "S" sizes), with random weights (timing does not depend on their
values):
  DNN S:    FC 490->H, FC H->H, FC H->H (ReLU), FC H->12; H = 144 full width
  DS-CNN S: conv 10x4 stride 2 (1->W), 4 x [depthwise 3x3 (W) + pointwise
            1x1 (W->W)], average pool, FC W->12; W = 64 full width
The active widths of every subnetwork come from bench_config.h, written by
benchmarks/cortex_m4.py (which picks them for about 100/75/50/25 % MACs).

For each subnetwork the program prints one line
  RESULT model=<m> sub=<k> width=<w> macs=<n> ticks=<t>
with the timer ticks of one inference (every layer: the table lookup the
TFLite Micro glue does in Eval, then the kernel), and for switching
  SELECT what=<name> calls=<n> ticks=<t> baseline_ticks=<b>
for n calls of a switching routine and of an empty routine with the same
call overhead (the difference divided by n is the instructions per call).
==============================================================================*/
#include <stdint.h>
#include <string.h>

#include "bench_config.h"
#include "hads_kernels.h"
#include "hads_subnetworks.h"
#include "semihost.h"
#include "timer.h"

namespace {

constexpr int kMaxS = BENCH_NUM_SUBNETWORKS;

// ---------------------------------------------------------------------------
// Deterministic pseudo-random int8 data (xorshift32).
uint32_t g_rng = 0x12345678u;
int8_t RandomInt8() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 17;
  g_rng ^= g_rng << 5;
  return static_cast<int8_t>(g_rng & 0xFFu);
}
void Fill(int8_t* data, int n) {
  for (int i = 0; i < n; ++i) data[i] = RandomInt8();
}

// One nested layer: full-size int8 weights plus its subnetwork tables, set
// up the way the TFLite Micro glue holds them after Prepare.
enum class Kind { kFc, kConv, kDepthwise };

template <int kFullIn, int kFullOut, int kWeights>
struct Layer {
  Kind kind;
  int8_t weights[kWeights];
  int32_t in_channels[kMaxS];
  int32_t out_channels[kMaxS];
  int32_t multiplier[kMaxS * kFullOut];
  int32_t shift[kMaxS * kFullOut];
  int32_t bias[kMaxS * kFullOut];
  hads::SubnetworkTables tables;
  hads::FullyConnectedShape fc_shape;
  hads::ConvShape conv_shape;
  int32_t act_min, act_max;

  void Init(Kind k, const int* in_widths, const int* out_widths) {
    kind = k;
    Fill(weights, kWeights);
    for (int s = 0; s < kMaxS; ++s) {
      in_channels[s] = in_widths[s];
      out_channels[s] = out_widths[s];
      for (int c = 0; c < kFullOut; ++c) {
        // A typical requantization: scale ~ 2^-9, a small bias.
        multiplier[s * kFullOut + c] = 1518500250 + 1000 * c;
        shift[s * kFullOut + c] = -8;
        bias[s * kFullOut + c] = 64 * (c % 7) - 200;
      }
    }
    tables.num_subnetworks = kMaxS;
    tables.full_in = kFullIn;
    tables.full_out = kFullOut;
    tables.in_channels = in_channels;
    tables.out_channels = out_channels;
    tables.output_multiplier = multiplier;
    tables.output_shift = shift;
    tables.bias = bias;
    act_min = -128;  // ReLU with output zero point -128
    act_max = 127;
  }

  // What HADS_* Eval does: look the subnetwork up, then run the kernel.
  hads::Status Run(int32_t subnetwork, const int8_t* in, int8_t* out) const {
    hads::ActiveSubnetwork active;
    hads::Status st = hads::SelectSubnetwork(tables, subnetwork, &active);
    if (st != hads::kOk) return st;
    hads::QuantizedParams p;
    p.input_offset = 128;
    p.output_offset = -128;
    p.act_min = act_min;
    p.act_max = act_max;
    p.output_multiplier = active.output_multiplier;
    p.output_shift = active.output_shift;
    p.bias = active.bias;
    switch (kind) {
      case Kind::kFc:
        return hads::FullyConnectedInt8(fc_shape, p, active.in_channels,
                                        active.out_channels, in, weights, out);
      case Kind::kConv:
        return hads::Conv2DInt8(conv_shape, p, active.in_channels,
                                active.out_channels, in, weights, out);
      case Kind::kDepthwise:
        return hads::DepthwiseConv2DInt8(conv_shape, p, active.in_channels, in,
                                         weights, out);
    }
    return hads::kErrBadShape;
  }
};

hads::FullyConnectedShape FcShape(int in, int out) {
  hads::FullyConnectedShape s;
  s.batches = 1;
  s.in_spatial = 1;
  s.in_channels = in;
  s.out_channels = out;
  return s;
}

bool Check(hads::Status st, const char* what) {
  if (st == hads::kOk) return true;
  semihost_write0("ERROR ");
  semihost_write0(what);
  semihost_write0(": ");
  semihost_write0(hads::StatusString(st));
  semihost_write0("\n");
  return false;
}

void PrintResult(const char* model, int k, int width, uint32_t macs,
                 uint32_t ticks) {
  semihost_write0("RESULT model=");
  semihost_write0(model);
  semihost_write0(" sub=");
  semihost_write_int(k);
  semihost_write0(" width=");
  semihost_write_int(width);
  semihost_write0(" macs=");
  semihost_write_uint(macs);
  semihost_write0(" ticks=");
  semihost_write_uint(ticks);
  semihost_write0("\n");
}

// ---------------------------------------------------------------------------
// DNN S.
constexpr int kDnnIn = 490, kDnnHidden = 144, kDnnOut = 12;
const int kDnnWidths[kMaxS] = BENCH_DNN_WIDTHS;
int kDnnInput[kMaxS], kDnnClasses[kMaxS];

Layer<kDnnIn, kDnnHidden, kDnnIn * kDnnHidden> g_dnn1;
Layer<kDnnHidden, kDnnHidden, kDnnHidden * kDnnHidden> g_dnn2, g_dnn3;
Layer<kDnnHidden, kDnnOut, kDnnHidden * kDnnOut> g_dnn4;
int8_t g_dnn_x[kDnnIn], g_dnn_a[kDnnHidden], g_dnn_b[kDnnHidden];
int8_t g_dnn_y[kDnnOut];

uint32_t DnnMacs(int h) {
  return static_cast<uint32_t>(kDnnIn * h + 2 * h * h + h * kDnnOut);
}

__attribute__((noinline)) bool DnnInvoke(int32_t k) {
  return g_dnn1.Run(k, g_dnn_x, g_dnn_a) == hads::kOk &&
         g_dnn2.Run(k, g_dnn_a, g_dnn_b) == hads::kOk &&
         g_dnn3.Run(k, g_dnn_b, g_dnn_a) == hads::kOk &&
         g_dnn4.Run(k, g_dnn_a, g_dnn_y) == hads::kOk;
}

bool SetUpDnn() {
  for (int s = 0; s < kMaxS; ++s) {
    kDnnInput[s] = kDnnIn;
    kDnnClasses[s] = kDnnOut;
  }
  g_dnn1.Init(Kind::kFc, kDnnInput, kDnnWidths);
  g_dnn2.Init(Kind::kFc, kDnnWidths, kDnnWidths);
  g_dnn3.Init(Kind::kFc, kDnnWidths, kDnnWidths);
  g_dnn4.Init(Kind::kFc, kDnnWidths, kDnnClasses);
  g_dnn4.act_min = -128;  // no activation on the logits
  g_dnn1.fc_shape = FcShape(kDnnIn, kDnnHidden);
  g_dnn2.fc_shape = FcShape(kDnnHidden, kDnnHidden);
  g_dnn3.fc_shape = FcShape(kDnnHidden, kDnnHidden);
  g_dnn4.fc_shape = FcShape(kDnnHidden, kDnnOut);
  Fill(g_dnn_x, kDnnIn);
  return Check(hads::ValidateSubnetworkTables(g_dnn1.tables, 0), "dnn1") &&
         Check(hads::ValidateSubnetworkTables(g_dnn2.tables, 0), "dnn2") &&
         Check(hads::ValidateSubnetworkTables(g_dnn3.tables, 0), "dnn3") &&
         Check(hads::ValidateSubnetworkTables(g_dnn4.tables, 0), "dnn4");
}

// ---------------------------------------------------------------------------
// DS-CNN S: 49x10x1 input, conv 10x4 stride 2 SAME -> 25x5xW.
constexpr int kKwsH = 49, kKwsW = 10, kConvKh = 10, kConvKw = 4;
constexpr int kDsW = 64, kDsOut = 12, kBlocks = 4;
constexpr int kFeatH = 25, kFeatW = 5, kFeat = kFeatH * kFeatW;
const int kDsWidths[kMaxS] = BENCH_DS_CNN_WIDTHS;
int kOne[kMaxS], kDsClasses[kMaxS];

Layer<1, kDsW, kDsW * kConvKh * kConvKw> g_conv1;
Layer<kDsW, kDsW, 9 * kDsW> g_dw[kBlocks];
Layer<kDsW, kDsW, kDsW * kDsW> g_pw[kBlocks];
Layer<kDsW, kDsOut, kDsW * kDsOut> g_ds_fc;
int8_t g_ds_x[kKwsH * kKwsW], g_ds_a[kFeat * kDsW], g_ds_b[kFeat * kDsW];
int8_t g_ds_pool[kDsW], g_ds_y[kDsOut];

uint32_t DsCnnMacs(int w) {
  return static_cast<uint32_t>(kFeat * w * kConvKh * kConvKw +
                               kBlocks * (kFeat * w * 9 + kFeat * w * w) +
                               w * kDsOut);
}

// Average pool over the 25x5 positions of the active channels (the builtin
// AVERAGE_POOL_2D of the real model; included so the timing covers it).
void AveragePool(const int8_t* in, int channels, int8_t* out) {
  for (int c = 0; c < channels; ++c) {
    int32_t sum = 0;
    for (int p = 0; p < kFeat; ++p) sum += in[p * kDsW + c];
    out[c] = static_cast<int8_t>(sum / kFeat);
  }
  for (int c = channels; c < kDsW; ++c) out[c] = -128;
}

__attribute__((noinline)) bool DsCnnInvoke(int32_t k) {
  if (g_conv1.Run(k, g_ds_x, g_ds_a) != hads::kOk) return false;
  for (int b = 0; b < kBlocks; ++b) {
    if (g_dw[b].Run(k, g_ds_a, g_ds_b) != hads::kOk) return false;
    if (g_pw[b].Run(k, g_ds_b, g_ds_a) != hads::kOk) return false;
  }
  // The pool is a builtin operator: it runs over all channels in the real
  // model (inactive ones hold the zero point), so do the same here.
  AveragePool(g_ds_a, kDsW, g_ds_pool);
  return g_ds_fc.Run(k, g_ds_pool, g_ds_y) == hads::kOk;
}

bool SetUpDsCnn() {
  for (int s = 0; s < kMaxS; ++s) {
    kOne[s] = 1;
    kDsClasses[s] = kDsOut;
  }
  g_conv1.Init(Kind::kConv, kOne, kDsWidths);
  bool ok = Check(hads::MakeConvShape(1, kKwsH, kKwsW, 1, kConvKh, kConvKw,
                                      kDsW, 2, 2, hads::kPaddingSame, 1,
                                      &g_conv1.conv_shape),
                  "conv1 shape");
  ok = ok && g_conv1.conv_shape.out_height == kFeatH &&
       g_conv1.conv_shape.out_width == kFeatW;
  for (int b = 0; b < kBlocks; ++b) {
    g_dw[b].Init(Kind::kDepthwise, kDsWidths, kDsWidths);
    g_pw[b].Init(Kind::kConv, kDsWidths, kDsWidths);
    ok = ok && Check(hads::MakeConvShape(1, kFeatH, kFeatW, kDsW, 3, 3, kDsW,
                                         1, 1, hads::kPaddingSame, 1,
                                         &g_dw[b].conv_shape),
                     "dw shape");
    ok = ok && Check(hads::MakeConvShape(1, kFeatH, kFeatW, kDsW, 1, 1, kDsW,
                                         1, 1, hads::kPaddingSame, 1,
                                         &g_pw[b].conv_shape),
                     "pw shape");
    ok = ok && Check(hads::ValidateSubnetworkTables(g_dw[b].tables, 1), "dw");
    ok = ok && Check(hads::ValidateSubnetworkTables(g_pw[b].tables, 0), "pw");
  }
  g_ds_fc.Init(Kind::kFc, kDsWidths, kDsClasses);
  g_ds_fc.fc_shape = FcShape(kDsW, kDsOut);
  Fill(g_ds_x, kKwsH * kKwsW);
  return ok && Check(hads::ValidateSubnetworkTables(g_conv1.tables, 0), "c1") &&
         Check(hads::ValidateSubnetworkTables(g_ds_fc.tables, 0), "fc");
}

// ---------------------------------------------------------------------------
// Switching. On the device, switching is the Arduino library's select(k)
// (one bounds check and one store into the `subnetwork` input tensor); at
// the next Invoke every HADS operator does one table lookup
// (hads::SelectSubnetwork), which is already inside the inference timings
// above and measured here on its own as well.
hads::SubnetworkCost g_costs[kMaxS];
int32_t g_subnetwork_slot;
hads::SubnetworkSelector g_selector;
volatile int g_sink;

__attribute__((noinline)) void CallSelect(int k) {
  g_sink = static_cast<int>(g_selector.select(k));
}
hads::ActiveSubnetwork g_active;  // global: no per-call initialization
__attribute__((noinline)) void CallLookup(int k) {
  g_sink = static_cast<int>(hads::SelectSubnetwork(g_dnn2.tables, k, &g_active));
}
__attribute__((noinline)) void CallNothing(int k) { g_sink = k; }

uint32_t TimeCalls(void (*fn)(int), int calls) {
  const uint32_t t0 = timer_now();
  for (int i = 0; i < calls; ++i) fn(i % kMaxS);
  return t0 - timer_now();
}

void BenchSwitch(const char* what, void (*fn)(int)) {
  constexpr int kCalls = 4000;
  // Pointer calls through a volatile so the compiler cannot inline them.
  void (*volatile target)(int) = fn;
  void (*volatile nothing)(int) = CallNothing;
  const uint32_t ticks = TimeCalls(target, kCalls);
  const uint32_t base = TimeCalls(nothing, kCalls);
  semihost_write0("SELECT what=");
  semihost_write0(what);
  semihost_write0(" calls=");
  semihost_write_int(kCalls);
  semihost_write0(" ticks=");
  semihost_write_uint(ticks);
  semihost_write0(" baseline_ticks=");
  semihost_write_uint(base);
  semihost_write0("\n");
}

template <typename InvokeFn, typename MacsFn>
bool BenchModel(const char* name, const int* widths, InvokeFn invoke,
                MacsFn macs) {
  for (int k = 0; k < kMaxS; ++k) {
    if (!invoke(k)) return false;  // warm-up and error check
    const uint32_t t0 = timer_now();
    const bool ok = invoke(k);
    const uint32_t ticks = t0 - timer_now();
    if (!ok) return false;
    PrintResult(name, k, widths[k], macs(widths[k]), ticks);
  }
  // An out-of-range subnetwork must be refused, never read out of bounds.
  return !invoke(kMaxS) && !invoke(-1);
}

}  // namespace

int main() {
  timer_start();
  if (!SetUpDnn() || !SetUpDsCnn()) return 2;

  for (int k = 0; k < kMaxS; ++k) {
    g_costs[k].macs = DnnMacs(kDnnWidths[k]);
    g_costs[k].params = 0;
  }
  const hads::CostTable table = {kMaxS, g_costs};
  if (g_selector.begin(table, &g_subnetwork_slot) != hads::Result::kOk) {
    return 3;
  }

  if (!BenchModel("dnn_s", kDnnWidths, DnnInvoke, DnnMacs)) return 4;
  if (!BenchModel("ds_cnn_s", kDsWidths, DsCnnInvoke, DsCnnMacs)) return 5;
  BenchSwitch("library_select", CallSelect);
  BenchSwitch("operator_lookup", CallLookup);
  semihost_write0("DONE\n");
  return 0;
}
