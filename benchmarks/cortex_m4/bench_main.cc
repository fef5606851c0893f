/* Copyright 2026 The hads_keras Authors. Licensed under the Apache License 2.0.

Bare-metal benchmark of the HADS int8 kernels on an emulated Cortex-M4 (QEMU
mps2-an386, -icount shift=0: 1 instruction per ns of virtual time, the timer
ticks every 40 instructions; see timer.h), against what a user runs instead.

Three int8 networks shaped like the paper's keyword-spotting models (Hello
Edge "S" sizes, hads_keras/models.py), random weights (instruction counts do
not depend on their values):
  DNN S:    FC 490->144, FC 144->144, FC 144->144, FC 144->12
  CNN S:    conv 10x4 (1->28) VALID, conv 10x4 stride 2x1 (28->30) VALID,
            FC 16*4*30->16 (linear), FC 16->128, FC 128->12
  DS-CNN S: conv 10x4 stride 2 SAME (1->64), 4 x [depthwise 3x3 (64) +
            pointwise 1x1 (64->64)], average pool, FC 64->12
The active widths of every subnetwork and group come from bench_config.h
(benchmarks/cortex_m4.py picks them for about 100/75/50/25 % MACs).

For every subnetwork k it runs
  hads:      the nested model: full-size weights and buffers, the layer's
             table lookup (what the TFLite Micro glue does in Eval), then
             hads::FullyConnectedInt8 / Conv2DInt8 / DepthwiseConv2DInt8
             (on this core: the DSP kernels, hads_kernels_dsp.cc);
  reference: the standalone subnetwork (weights physically sliced to the
             active widths) on the portable kernels, hads::reference::*;
  cmsis_nn:  the same standalone subnetwork on ARM CMSIS-NN's s8 kernels
             (arm_fully_connected_per_channel_s8, arm_convolve_wrapper_s8,
             arm_depthwise_conv_wrapper_s8, as TFLite Micro's cmsis_nn
             kernels call them), when built with BENCH_CMSIS_NN;
and prints per layer and per model
  LAYER model=<m> k=<k> impl=<i> layer=<name> macs=<n> ticks=<t>
  MODEL model=<m> k=<k> impl=<i> macs=<n> ticks=<t>
and whether the three give the same logits (they must, bit for bit):
  CHECK model=<m> k=<k> impl=<i> same=<0|1>
plus the switching costs
  SELECT what=<name> calls=<n> ticks=<t> baseline_ticks=<b>
==============================================================================*/
#include <stdint.h>
#include <string.h>

#include "bench_config.h"
#include "hads_kernels.h"
#include "hads_subnetworks.h"
#include "semihost.h"
#include "timer.h"

#ifdef BENCH_CMSIS_NN
#include "arm_nnfunctions.h"
#endif

namespace {

constexpr int kS = BENCH_NUM_SUBNETWORKS;

// ---------------------------------------------------------------------------
// Memory: one bump allocator over a static arena (set-up only).
alignas(8) uint8_t g_arena[1200 * 1024];
uint32_t g_used = 0;
void* Alloc(uint32_t bytes) {
  bytes = (bytes + 7u) & ~7u;
  if (g_used + bytes > sizeof(g_arena)) {
    semihost_write0("ERROR arena full\n");
    semihost_exit(6);
  }
  void* p = g_arena + g_used;
  g_used += bytes;
  return p;
}
template <typename T>
T* AllocArray(int n) {
  return static_cast<T*>(Alloc(static_cast<uint32_t>(n) * sizeof(T)));
}

uint32_t g_rng = 0x12345678u;
uint32_t Next() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 17;
  g_rng ^= g_rng << 5;
  return g_rng;
}
void Fill(int8_t* data, int n) {
  for (int i = 0; i < n; ++i) data[i] = static_cast<int8_t>(Next());
}

// ---------------------------------------------------------------------------
// Layers.
enum class Kind { kFc, kConv, kDepthwise, kAvgPool };

struct Layer {
  const char* name;
  Kind kind;
  // Full input: FC: h=1, w=P positions, c=C channels per position.
  int h, w, c;
  int kh, kw, out_c, sh, sw;
  hads::Padding pad;
  bool relu;
  int in_group, out_group;  // index into the width table; -1: never sliced
  // Derived (SetUp).
  int out_h = 0, out_w = 0;
  int n_weights = 0;
  int8_t* weights = nullptr;  // full, nested layout
  int8_t* sliced = nullptr;   // the standalone subnetwork's copy for the current k
  int32_t* multiplier = nullptr;  // [kS * out_c]
  int32_t* shift = nullptr;
  int32_t* bias = nullptr;
  int32_t in_ch[kS] = {}, out_ch[kS] = {};
  hads::SubnetworkTables tables = {};
  int32_t input_offset = 0, output_offset = 0;
  int8_t* scratch = nullptr;
  int32_t scratch_bytes = 0;
};

const int kWidths[][kS] = BENCH_WIDTHS;  // [group][subnetwork]

int InWidth(const Layer& l, int k) {
  return l.in_group < 0 ? l.c : kWidths[l.in_group][k];
}
int OutWidth(const Layer& l, int k) {
  if (l.kind == Kind::kDepthwise || l.kind == Kind::kAvgPool) {
    return InWidth(l, k);
  }
  return l.out_group < 0 ? l.out_c : kWidths[l.out_group][k];
}

uint32_t LayerMacs(const Layer& l, int k) {
  const uint32_t win = InWidth(l, k), wout = OutWidth(l, k);
  const uint32_t pix = l.out_h * l.out_w;
  switch (l.kind) {
    case Kind::kFc:
      return l.w * win * wout;
    case Kind::kConv:
      return pix * l.kh * l.kw * win * wout;
    case Kind::kDepthwise:
      return pix * l.kh * l.kw * win;
    case Kind::kAvgPool:
      return 0;
  }
  return 0;
}

bool Conv(const Layer& l, int cin, int cout, hads::ConvShape* s) {
  return hads::MakeConvShape(1, l.h, l.w, cin, l.kh, l.kw, cout, l.sh, l.sw,
                             l.pad, 1, s) == hads::kOk;
}

void SetUp(Layer& l, int32_t input_offset) {
  l.input_offset = input_offset;
  // ReLU layers: output zero point -128, clamp at it; others: zero point 3.
  l.output_offset = l.relu ? -128 : 3;
  if (l.kind == Kind::kAvgPool) {
    l.out_h = l.out_w = 1;
    l.out_c = l.c;
    return;
  }
  if (l.kind == Kind::kFc) {
    l.out_h = l.out_w = 1;
    l.n_weights = l.out_c * l.w * l.c;
  } else {
    hads::ConvShape s;
    if (!Conv(l, l.c, l.kind == Kind::kDepthwise ? l.c : l.out_c, &s)) {
      semihost_write0("ERROR shape\n");
      semihost_exit(7);
    }
    l.out_h = s.out_height;
    l.out_w = s.out_width;
    if (l.kind == Kind::kDepthwise) l.out_c = l.c;
    l.n_weights = l.kind == Kind::kDepthwise ? l.kh * l.kw * l.c
                                             : l.out_c * l.kh * l.kw * l.c;
    l.scratch_bytes =
        l.kind == Kind::kConv ? hads::Conv2DInt8ScratchBytes(s) : 0;
    l.scratch = l.scratch_bytes > 0 ? AllocArray<int8_t>(l.scratch_bytes)
                                    : nullptr;
  }
  l.weights = AllocArray<int8_t>(l.n_weights);
  l.sliced = AllocArray<int8_t>(l.n_weights);
  Fill(l.weights, l.n_weights);
  l.multiplier = AllocArray<int32_t>(kS * l.out_c);
  l.shift = AllocArray<int32_t>(kS * l.out_c);
  l.bias = AllocArray<int32_t>(kS * l.out_c);
  // Sums of `terms` products of about 2^13: shift so outputs spread.
  const int terms =
      l.kind == Kind::kFc ? l.w * l.c
                          : l.kh * l.kw * (l.kind == Kind::kConv ? l.c : 1);
  int log2 = 12;
  for (int t = terms; t > 1; t >>= 2) ++log2;
  for (int s = 0; s < kS; ++s) {
    l.in_ch[s] = InWidth(l, s);
    l.out_ch[s] = OutWidth(l, s);
    for (int c = 0; c < l.out_c; ++c) {
      l.multiplier[s * l.out_c + c] = 1518500250 + 1000 * c + 7 * s;
      l.shift[s * l.out_c + c] = 6 - log2;
      l.bias[s * l.out_c + c] = 64 * (c % 7) - 200 + s;
    }
  }
  l.tables.num_subnetworks = kS;
  l.tables.full_in = l.c;
  l.tables.full_out = l.out_c;
  l.tables.in_channels = l.in_ch;
  l.tables.out_channels = l.out_ch;
  l.tables.output_multiplier = l.multiplier;
  l.tables.output_shift = l.shift;
  l.tables.bias = l.bias;
}

int32_t ActMin(const Layer& l) { return l.relu ? l.output_offset : -128; }

// The standalone subnetwork k's weights: the active rows and columns,
// contiguous (what a separately exported model holds).
void Slice(Layer& l, int k) {
  const int win = InWidth(l, k), wout = OutWidth(l, k);
  int8_t* dst = l.sliced;
  if (l.kind == Kind::kFc || l.kind == Kind::kConv) {
    const int taps = l.kind == Kind::kFc ? l.w : l.kh * l.kw;
    for (int o = 0; o < wout; ++o) {
      for (int t = 0; t < taps; ++t) {
        memcpy(dst, l.weights + (o * taps + t) * l.c, win);
        dst += win;
      }
    }
  } else if (l.kind == Kind::kDepthwise) {
    for (int t = 0; t < l.kh * l.kw; ++t) {
      memcpy(dst, l.weights + t * l.c, win);
      dst += win;
    }
  }
}

// Average pool over all positions (TFLite's integer AVERAGE_POOL_2D: round
// half away from zero), `channels` of the `stride` channels of each.
void AveragePool(const Layer& l, int channels, int stride, const int8_t* in,
                 int8_t* out) {
  const int n = l.h * l.w;
  for (int c = 0; c < channels; ++c) {
    int32_t sum = 0;
    for (int p = 0; p < n; ++p) sum += in[p * stride + c];
    sum = sum > 0 ? (sum + n / 2) / n : (sum - n / 2) / n;
    out[c] = static_cast<int8_t>(sum);
  }
}

// What HADS_* Eval does: look the subnetwork up, then run the kernel.
bool RunNested(const Layer& l, int32_t k, const int8_t* in, int8_t* out) {
  if (l.kind == Kind::kAvgPool) {
    // A builtin operator: it runs over all channels (inactive ones hold
    // the zero point) in the real nested model.
    AveragePool(l, l.c, l.c, in, out);
    return true;
  }
  hads::ActiveSubnetwork a;
  if (hads::SelectSubnetwork(l.tables, k, &a) != hads::kOk) return false;
  hads::QuantizedParams p;
  p.input_offset = l.input_offset;
  p.output_offset = l.output_offset;
  p.act_min = ActMin(l);
  p.act_max = 127;
  p.output_multiplier = a.output_multiplier;
  p.output_shift = a.output_shift;
  p.bias = a.bias;
  if (l.kind == Kind::kFc) {
    const hads::FullyConnectedShape s = {1, l.w, l.c, l.out_c};
    return hads::FullyConnectedInt8(s, p, a.in_channels, a.out_channels, in,
                                    l.weights, out) == hads::kOk;
  }
  hads::ConvShape s;
  if (!Conv(l, l.c, l.out_c, &s)) return false;
  if (l.kind == Kind::kConv) {
    return hads::Conv2DInt8(s, p, a.in_channels, a.out_channels, in, l.weights,
                            out, l.scratch, l.scratch_bytes) == hads::kOk;
  }
  return hads::DepthwiseConv2DInt8(s, p, a.in_channels, in, l.weights, out) ==
         hads::kOk;
}

hads::QuantizedParams StandaloneParams(const Layer& l, int k) {
  hads::QuantizedParams p;
  p.input_offset = l.input_offset;
  p.output_offset = l.output_offset;
  p.act_min = ActMin(l);
  p.act_max = 127;
  p.output_multiplier = l.multiplier + k * l.out_c;
  p.output_shift = l.shift + k * l.out_c;
  p.bias = l.bias + k * l.out_c;
  return p;
}

bool RunReference(const Layer& l, int k, const int8_t* in, int8_t* out) {
  const int win = InWidth(l, k), wout = OutWidth(l, k);
  if (l.kind == Kind::kAvgPool) {
    AveragePool(l, win, win, in, out);
    return true;
  }
  const hads::QuantizedParams p = StandaloneParams(l, k);
  if (l.kind == Kind::kFc) {
    const hads::FullyConnectedShape s = {1, l.w, win, wout};
    return hads::reference::FullyConnectedInt8(s, p, win, wout, in, l.sliced,
                                               out) == hads::kOk;
  }
  hads::ConvShape s;
  if (!Conv(l, win, l.kind == Kind::kDepthwise ? win : wout, &s)) return false;
  if (l.kind == Kind::kConv) {
    return hads::reference::Conv2DInt8(s, p, win, wout, in, l.sliced, out) ==
           hads::kOk;
  }
  return hads::reference::DepthwiseConv2DInt8(s, p, win, in, l.sliced, out) ==
         hads::kOk;
}

#ifdef BENCH_CMSIS_NN
alignas(8) int8_t g_cmsis_buffer[16 * 1024];

bool RunCmsis(const Layer& l, int k, const int8_t* in, int8_t* out) {
  const int win = InWidth(l, k), wout = OutWidth(l, k);
  if (l.kind == Kind::kAvgPool) {
    AveragePool(l, win, win, in, out);
    return true;
  }
  const hads::QuantizedParams p = StandaloneParams(l, k);
  cmsis_nn_per_channel_quant_params q;
  q.multiplier = const_cast<int32_t*>(p.output_multiplier);
  q.shift = const_cast<int32_t*>(p.output_shift);
  cmsis_nn_activation act;
  act.min = p.act_min;
  act.max = p.act_max;
  cmsis_nn_context ctx;
  ctx.buf = g_cmsis_buffer;
  ctx.size = sizeof(g_cmsis_buffer);
  cmsis_nn_dims in_dims, filter_dims, bias_dims, out_dims;
  if (l.kind == Kind::kFc) {
    cmsis_nn_fc_params fc;
    fc.input_offset = p.input_offset;
    fc.filter_offset = 0;
    fc.output_offset = p.output_offset;
    fc.activation = act;
    in_dims = {1, 1, 1, l.w * win};
    filter_dims = {l.w * win, 1, 1, wout};
    bias_dims = {1, 1, 1, wout};
    out_dims = {1, 1, 1, wout};
    return arm_fully_connected_per_channel_s8(
               &ctx, &fc, &q, &in_dims, in, &filter_dims, l.sliced,
               &bias_dims, p.bias, &out_dims, out) == ARM_CMSIS_NN_SUCCESS;
  }
  hads::ConvShape s;
  const int cout = l.kind == Kind::kDepthwise ? win : wout;
  if (!Conv(l, win, cout, &s)) return false;
  in_dims = {1, l.h, l.w, win};
  bias_dims = {1, 1, 1, cout};
  out_dims = {1, s.out_height, s.out_width, cout};
  cmsis_nn_tile stride = {l.sw, l.sh};
  cmsis_nn_tile padding = {s.pad_width, s.pad_height};
  cmsis_nn_tile dilation = {1, 1};
  if (l.kind == Kind::kConv) {
    cmsis_nn_conv_params cp;
    cp.input_offset = p.input_offset;
    cp.output_offset = p.output_offset;
    cp.stride = stride;
    cp.padding = padding;
    cp.dilation = dilation;
    cp.activation = act;
    filter_dims = {cout, l.kh, l.kw, win};
    if (arm_convolve_wrapper_s8_get_buffer_size(&cp, &in_dims, &filter_dims,
                                                &out_dims) >
        static_cast<int32_t>(sizeof(g_cmsis_buffer))) {
      return false;
    }
    return arm_convolve_wrapper_s8(&ctx, &cp, &q, &in_dims, in, &filter_dims,
                                   l.sliced, &bias_dims, p.bias, &out_dims,
                                   out) == ARM_CMSIS_NN_SUCCESS;
  }
  cmsis_nn_dw_conv_params dp;
  dp.input_offset = p.input_offset;
  dp.output_offset = p.output_offset;
  dp.ch_mult = 1;
  dp.stride = stride;
  dp.padding = padding;
  dp.dilation = dilation;
  dp.activation = act;
  filter_dims = {1, l.kh, l.kw, cout};
  if (arm_depthwise_conv_wrapper_s8_get_buffer_size(&dp, &in_dims, &filter_dims,
                                                    &out_dims) >
      static_cast<int32_t>(sizeof(g_cmsis_buffer))) {
    return false;
  }
  return arm_depthwise_conv_wrapper_s8(&ctx, &dp, &q, &in_dims, in,
                                       &filter_dims, l.sliced, &bias_dims,
                                       p.bias, &out_dims,
                                       out) == ARM_CMSIS_NN_SUCCESS;
}
#endif

// ---------------------------------------------------------------------------
// Networks.
struct Net {
  const char* name;
  Layer* layers;
  int n;
  int in_size;      // input elements
  int max_act;      // largest activation (full size)
  int8_t* input;
  int8_t* a;        // ping-pong activation buffers
  int8_t* b;
};

Layer g_dnn[] = {
    {"fc1", Kind::kFc, 1, 1, 490, 1, 1, 144, 1, 1, hads::kPaddingValid, true, -1, 0},
    {"fc2", Kind::kFc, 1, 1, 144, 1, 1, 144, 1, 1, hads::kPaddingValid, true, 0, 1},
    {"fc3", Kind::kFc, 1, 1, 144, 1, 1, 144, 1, 1, hads::kPaddingValid, true, 1, 2},
    {"classifier", Kind::kFc, 1, 1, 144, 1, 1, 12, 1, 1, hads::kPaddingValid, false, 2, -1},
};
Layer g_cnn[] = {
    {"conv1", Kind::kConv, 49, 10, 1, 10, 4, 28, 1, 1, hads::kPaddingValid, true, -1, 3},
    {"conv2", Kind::kConv, 40, 7, 28, 10, 4, 30, 2, 1, hads::kPaddingValid, true, 3, 4},
    {"linear", Kind::kFc, 1, 16 * 4, 30, 1, 1, 16, 1, 1, hads::kPaddingValid, false, 4, 5},
    {"fc1", Kind::kFc, 1, 1, 16, 1, 1, 128, 1, 1, hads::kPaddingValid, true, 5, 6},
    {"classifier", Kind::kFc, 1, 1, 128, 1, 1, 12, 1, 1, hads::kPaddingValid, false, 6, -1},
};
#define DS_BLOCK(i)                                                          \
  {"ds" #i "_depthwise", Kind::kDepthwise, 25, 5, 64, 3, 3, 64, 1, 1,        \
   hads::kPaddingSame, true, 7, 7},                                          \
  {"ds" #i "_pointwise", Kind::kConv, 25, 5, 64, 1, 1, 64, 1, 1,             \
   hads::kPaddingSame, true, 7, 7}
Layer g_ds_cnn[] = {
    {"conv1", Kind::kConv, 49, 10, 1, 10, 4, 64, 2, 2, hads::kPaddingSame, true, -1, 7},
    DS_BLOCK(1), DS_BLOCK(2), DS_BLOCK(3), DS_BLOCK(4),
    {"avg_pool", Kind::kAvgPool, 25, 5, 64, 1, 1, 64, 1, 1, hads::kPaddingValid, false, 7, 7},
    {"classifier", Kind::kFc, 1, 1, 64, 1, 1, 12, 1, 1, hads::kPaddingValid, false, 7, -1},
};

Net g_nets[] = {
    {"dnn_s", g_dnn, 4, 490, 0, nullptr, nullptr, nullptr},
    {"cnn_s", g_cnn, 5, 490, 0, nullptr, nullptr, nullptr},
    {"ds_cnn_s", g_ds_cnn, 11, 490, 0, nullptr, nullptr, nullptr},
};

void SetUpNet(Net& net) {
  int32_t offset = 3;  // input zero point -3
  net.max_act = net.in_size;
  for (int i = 0; i < net.n; ++i) {
    Layer& l = net.layers[i];
    SetUp(l, offset);
    offset = -l.output_offset;
    const int act = l.out_h * l.out_w * l.out_c;
    if (act > net.max_act) net.max_act = act;
  }
  net.input = AllocArray<int8_t>(net.in_size);
  Fill(net.input, net.in_size);
  net.a = AllocArray<int8_t>(net.max_act);
  net.b = AllocArray<int8_t>(net.max_act);
}

enum class Impl { kHads, kReference, kCmsis };
const char* ImplName(Impl i) {
  return i == Impl::kHads ? "hads"
                          : (i == Impl::kReference ? "reference" : "cmsis_nn");
}

void PrintLine(const char* tag, const char* model, int k, Impl impl,
               const char* layer, uint32_t macs, uint32_t ticks) {
  semihost_write0(tag);
  semihost_write0(" model=");
  semihost_write0(model);
  semihost_write0(" k=");
  semihost_write_int(k);
  semihost_write0(" impl=");
  semihost_write0(ImplName(impl));
  if (layer != nullptr) {
    semihost_write0(" layer=");
    semihost_write0(layer);
  }
  semihost_write0(" macs=");
  semihost_write_uint(macs);
  semihost_write0(" ticks=");
  semihost_write_uint(ticks);
  semihost_write0("\n");
}

// Runs the whole network once, timing every layer; `logits` gets the last
// layer's active outputs.
__attribute__((noinline)) bool RunNet(const Net& net, int k, Impl impl,
                                      bool print, int8_t* logits) {
  const int8_t* in = net.input;
  int8_t* out = net.a;
  uint32_t total = 0, macs = 0;
  for (int i = 0; i < net.n; ++i) {
    const Layer& l = net.layers[i];
    const uint32_t t0 = timer_now();
    bool ok = false;
    switch (impl) {
      case Impl::kHads:
        ok = RunNested(l, k, in, out);
        break;
      case Impl::kReference:
        ok = RunReference(l, k, in, out);
        break;
      case Impl::kCmsis:
#ifdef BENCH_CMSIS_NN
        ok = RunCmsis(l, k, in, out);
#endif
        break;
    }
    const uint32_t ticks = t0 - timer_now();
    if (!ok) {
      semihost_write0("ERROR layer ");
      semihost_write0(l.name);
      semihost_write0("\n");
      return false;
    }
    total += ticks;
    macs += LayerMacs(l, k);
    if (print) PrintLine("LAYER", net.name, k, impl, l.name, LayerMacs(l, k), ticks);
    in = out;
    out = out == net.a ? net.b : net.a;
  }
  if (print) PrintLine("MODEL", net.name, k, impl, nullptr, macs, total);
  memcpy(logits, in, 12);
  return true;
}

bool BenchNet(Net& net) {
  for (int k = 0; k < kS; ++k) {
    for (int i = 0; i < net.n; ++i) Slice(net.layers[i], k);
    int8_t expected[12], got[12];
    if (!RunNet(net, k, Impl::kHads, false, expected)) return false;  // warm-up
    if (!RunNet(net, k, Impl::kHads, true, got)) return false;
    Impl impls[2] = {Impl::kReference, Impl::kCmsis};
#ifdef BENCH_CMSIS_NN
    const int n_impls = 2;
#else
    const int n_impls = 1;
#endif
    for (int j = 0; j < n_impls; ++j) {
      if (!RunNet(net, k, impls[j], true, got)) return false;
      semihost_write0("CHECK model=");
      semihost_write0(net.name);
      semihost_write0(" k=");
      semihost_write_int(k);
      semihost_write0(" impl=");
      semihost_write0(ImplName(impls[j]));
      semihost_write0(memcmp(expected, got, 12) == 0 ? " same=1\n" : " same=0\n");
    }
  }
  // An out-of-range subnetwork must be refused, never read out of bounds.
  int8_t sink[12];
  return !RunNet(net, kS, Impl::kHads, false, sink) &&
         !RunNet(net, -1, Impl::kHads, false, sink);
}

// ---------------------------------------------------------------------------
// Switching. On the device, switching is the Arduino library's select(k)
// (one bounds check and one store into the `subnetwork` input tensor); at
// the next Invoke every HADS operator does one table lookup
// (hads::SelectSubnetwork), which is inside the timings above and measured
// here on its own as well.
hads::SubnetworkCost g_costs[kS];
int32_t g_subnetwork_slot;
hads::SubnetworkSelector g_selector;
volatile int g_sink;

__attribute__((noinline)) void CallSelect(int k) {
  g_sink = static_cast<int>(g_selector.select(k));
}
hads::ActiveSubnetwork g_active;  // global: no per-call initialization
__attribute__((noinline)) void CallLookup(int k) {
  g_sink = static_cast<int>(
      hads::SelectSubnetwork(g_dnn[1].tables, k, &g_active));
}
__attribute__((noinline)) void CallNothing(int k) { g_sink = k; }

uint32_t TimeCalls(void (*fn)(int), int calls) {
  const uint32_t t0 = timer_now();
  for (int i = 0; i < calls; ++i) fn(i % kS);
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

}  // namespace

int main() {
  timer_start();
  for (Net& net : g_nets) SetUpNet(net);
  for (Net& net : g_nets) {
    for (int i = 0; i < net.n; ++i) {
      const Layer& l = net.layers[i];
      if (l.kind != Kind::kAvgPool &&
          hads::ValidateSubnetworkTables(
              l.tables, l.kind == Kind::kDepthwise ? 1 : 0) != hads::kOk) {
        semihost_write0("ERROR tables\n");
        return 2;
      }
    }
  }
  for (int k = 0; k < kS; ++k) {
    g_costs[k].macs = 0;
    for (int i = 0; i < g_nets[0].n; ++i) g_costs[k].macs += LayerMacs(g_dnn[i], k);
    g_costs[k].params = 0;
  }
  const hads::CostTable table = {kS, g_costs, hads::LatencyUnit::kNone};
  if (g_selector.begin(table, &g_subnetwork_slot) != hads::Result::kOk) {
    return 3;
  }
  for (Net& net : g_nets) {
    if (!BenchNet(net)) return 4;
  }
  BenchSwitch("library_select", CallSelect);
  BenchSwitch("operator_lookup", CallLookup);
  semihost_write0("DONE\n");
  return 0;
}
