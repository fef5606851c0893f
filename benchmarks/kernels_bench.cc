// Instruction counts of the HADS kernels under valgrind --tool=callgrind,
// driven by benchmarks/kernels.py (which compiles this file, runs it under
// callgrind and writes benchmarks/results/kernels.json).
//
//   kernels_bench MODEL W0 W1 ... Wn-1
//
// MODEL is `dnn` (DNN S: 490 -> 144 -> 144 -> 144 -> 12 fully connected) or
// `dscnn` (DS-CNN S: conv 10x4 stride 2 with 64 filters on 49x10x1, four
// depthwise 3x3 + pointwise 64 blocks, average pool, fully connected 12);
// W0 > W1 > ... are the hidden widths of the subnetworks (W0 = full width).
//
// Each measured region is bracketed by CALLGRIND_ZERO_STATS and
// CALLGRIND_DUMP_STATS_AT(label), so each dump holds the instructions of
// exactly one region:
//   empty            a call of an empty noinline function (the bracket cost)
//   switch_write     writing the subnetwork integer
//   switch_lookup    writing it + the per-operator table lookup that every
//                    HADS Eval performs (SelectSubnetwork for all operators)
//   nested_k<K>      one inference of subnetwork K on the nested model
//                    (full-size buffers, active prefixes, fills)
//   standalone_k<K>  one inference of subnetwork K built as its own model:
//                    physically sliced weights and buffers, same kernels
// Before measuring, the nested output of every subnetwork is checked equal
// to the standalone one (exit code 2 otherwise).
#include <valgrind/callgrind.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "hads_kernels.h"

namespace {

using hads::ActiveSubnetwork;
using hads::SubnetworkTables;

// Deterministic weights: the nested and the standalone models must hold the
// same numbers.
int8_t WeightAt(uint32_t layer, uint32_t index) {
  uint32_t x = layer * 2654435761u ^ (index + 1) * 2246822519u;
  x ^= x >> 15;
  x *= 2654435761u;
  x ^= x >> 13;
  return static_cast<int8_t>(static_cast<int32_t>(x % 255u) - 127);
}

enum class Kind { kFc, kConv, kDw, kAvgPool };

struct Layer {
  Kind kind;
  hads::FullyConnectedShape fc;
  hads::ConvShape conv;
  hads::QuantizedParams params;
  std::vector<int8_t> weights;
  std::vector<int32_t> in_ch, out_ch, mult, shift, bias;
  SubnetworkTables tables;
  int in_buf, out_buf;
  int pool_elems;  // average pool: spatial positions; channels = conv.in_channels
};

struct Net {
  std::vector<Layer> layers;
  std::vector<std::vector<int8_t>> buffers;
};

// Per-subnetwork rows of the tables for `full_out` channels, the same
// numbers for a standalone model of subnetwork k (its row k, sliced).
void FillTables(Layer* l, const std::vector<int>& in_w,
                const std::vector<int>& out_w, int full_out, int fan_in,
                uint32_t seed, int only_k, int nested_full_out) {
  const int s = static_cast<int>(in_w.size());
  l->in_ch.assign(in_w.begin(), in_w.end());
  l->out_ch.assign(out_w.begin(), out_w.end());
  int right_shift = 7;
  for (int f = fan_in; f > 1; f >>= 2) ++right_shift;  // ~ sqrt(fan_in)
  for (int k = 0; k < s; ++k) {
    const int src_k = only_k >= 0 ? only_k : k;
    for (int c = 0; c < full_out; ++c) {
      const uint32_t idx = static_cast<uint32_t>(src_k * nested_full_out + c);
      l->mult.push_back(static_cast<int32_t>(
          (1u << 30) + (static_cast<uint32_t>(WeightAt(seed + 7, idx)) & 0xffff) *
                           4096u));
      l->shift.push_back(-right_shift);
      l->bias.push_back(static_cast<int32_t>(WeightAt(seed + 9, idx)) * 64);
    }
  }
  l->tables.num_subnetworks = s;
  l->tables.full_out = full_out;
}

// Points the tables at the layer's own arrays (after the layer has reached
// its final place in the network: copying a Layer would leave them dangling).
void BindTables(Layer* l) {
  l->tables.in_channels = l->in_ch.data();
  l->tables.out_channels = l->out_ch.data();
  l->tables.output_multiplier = l->mult.data();
  l->tables.output_shift = l->shift.data();
  l->tables.bias = l->bias.data();
}

// A network description independent of nested/standalone: per layer the
// nested full sizes; `widths_in/out[k]` are subnetwork k's active widths.
struct Spec {
  Kind kind;
  int in_h, in_w, kh, kw, stride;  // conv / dw / pool
  int full_in, full_out, in_spatial;
  std::vector<int> widths_in, widths_out;
  int act;  // 0 none, 1 relu
};

int AddBuffer(Net* net, size_t size) {
  net->buffers.emplace_back(size, static_cast<int8_t>(0));
  return static_cast<int>(net->buffers.size()) - 1;
}

// Builds the nested model (only_k < 0) or the standalone model of
// subnetwork only_k (full sizes = its active widths, weights sliced).
Net Build(const std::vector<Spec>& specs, int only_k) {
  Net net;
  net.layers.reserve(specs.size());
  size_t in_size = static_cast<size_t>(specs[0].in_h) * specs[0].in_w *
                   specs[0].full_in * specs[0].in_spatial;
  int prev = AddBuffer(&net, in_size);
  uint32_t seed = 1;
  for (const Spec& sp : specs) {
    Layer l = {};
    l.kind = sp.kind;
    const bool sliced = only_k >= 0;
    const int cin = sliced ? sp.widths_in[only_k] : sp.full_in;
    const int cout = sliced ? sp.widths_out[only_k] : sp.full_out;
    std::vector<int> in_w = sp.widths_in, out_w = sp.widths_out;
    if (sliced) in_w = {cin}, out_w = {cout};
    l.params.input_offset = 3;
    l.params.output_offset = -5;
    l.params.act_min = sp.act ? -5 : -128;
    l.params.act_max = 127;
    l.in_buf = prev;
    size_t out_size = 0;
    if (sp.kind == Kind::kFc) {
      l.fc = {1, sp.in_spatial, cin, cout};
      const int full_row = sp.in_spatial * sp.full_in;
      for (int o = 0; o < cout; ++o)
        for (int p = 0; p < sp.in_spatial; ++p)
          for (int c = 0; c < cin; ++c)
            l.weights.push_back(WeightAt(
                seed, static_cast<uint32_t>(o * full_row + p * sp.full_in + c)));
      out_size = static_cast<size_t>(cout);
      FillTables(&l, in_w, out_w, cout, sp.in_spatial * sp.full_in, seed,
                 only_k, sp.full_out);
      l.tables.full_in = cin;
    } else if (sp.kind == Kind::kAvgPool) {
      l.conv.in_channels = cin;
      l.pool_elems = sp.in_h * sp.in_w;
      out_size = static_cast<size_t>(cin);
    } else {
      const bool dw = sp.kind == Kind::kDw;
      const int m = dw ? sp.full_out / sp.full_in : 1;
      hads::MakeConvShape(1, sp.in_h, sp.in_w, cin, sp.kh, sp.kw, cout,
                          sp.stride, sp.stride, hads::kPaddingSame, m, &l.conv);
      if (dw) {
        for (int t = 0; t < sp.kh * sp.kw; ++t)
          for (int c = 0; c < cout; ++c)
            l.weights.push_back(
                WeightAt(seed, static_cast<uint32_t>(t * sp.full_out + c)));
      } else {
        const int taps = sp.kh * sp.kw;
        for (int o = 0; o < cout; ++o)
          for (int t = 0; t < taps; ++t)
            for (int c = 0; c < cin; ++c)
              l.weights.push_back(WeightAt(
                  seed, static_cast<uint32_t>((o * taps + t) * sp.full_in + c)));
      }
      out_size = static_cast<size_t>(l.conv.out_height) * l.conv.out_width * cout;
      FillTables(&l, in_w, out_w, cout, dw ? sp.kh * sp.kw
                                           : sp.kh * sp.kw * sp.full_in,
                 seed, only_k, sp.full_out);
      l.tables.full_in = cin;
    }
    l.out_buf = AddBuffer(&net, out_size);
    prev = l.out_buf;
    net.layers.push_back(std::move(l));
    BindTables(&net.layers.back());
    ++seed;
  }
  // Input data (only the active channels matter).
  std::vector<int8_t>& x = net.buffers[0];
  const Spec& first = specs[0];
  const int cin0 = only_k >= 0 ? first.widths_in[only_k] : first.full_in;
  const size_t positions = x.size() / static_cast<size_t>(cin0);
  for (size_t p = 0; p < positions; ++p)
    for (int c = 0; c < cin0; ++c)
      x[p * cin0 + c] = WeightAt(
          999, static_cast<uint32_t>(p * first.full_in + static_cast<size_t>(c)));
  return net;
}

// TFLite's reference int8 average pool over the whole image (global
// average), rounding half away from zero; works on all `channels` (as the
// builtin does on the full tensor of a nested model).
void AvgPool(const int8_t* in, int positions, int channels, int8_t* out) {
  for (int c = 0; c < channels; ++c) {
    int32_t sum = 0;
    for (int p = 0; p < positions; ++p) sum += in[p * channels + c];
    const int32_t avg = sum > 0 ? (sum + positions / 2) / positions
                                : (sum - positions / 2) / positions;
    out[c] = static_cast<int8_t>(avg < -128 ? -128 : (avg > 127 ? 127 : avg));
  }
}

// One inference, as the interpreter would run it: every HADS operator
// reads `*subnetwork`, looks up its row and runs its kernel.
__attribute__((noinline)) int Run(Net* net, const volatile int32_t* subnetwork) {
  for (Layer& l : net->layers) {
    const int8_t* x = net->buffers[l.in_buf].data();
    int8_t* y = net->buffers[l.out_buf].data();
    if (l.kind == Kind::kAvgPool) {
      AvgPool(x, l.pool_elems, l.conv.in_channels, y);
      continue;
    }
    ActiveSubnetwork a;
    if (hads::SelectSubnetwork(l.tables, *subnetwork, &a) != hads::kOk) return 1;
    hads::QuantizedParams p = l.params;
    p.output_multiplier = a.output_multiplier;
    p.output_shift = a.output_shift;
    p.bias = a.bias;
    hads::Status st = hads::kOk;
    if (l.kind == Kind::kFc) {
      st = hads::FullyConnectedInt8(l.fc, p, a.in_channels, a.out_channels, x,
                                    l.weights.data(), y);
    } else if (l.kind == Kind::kConv) {
      st = hads::Conv2DInt8(l.conv, p, a.in_channels, a.out_channels, x,
                            l.weights.data(), y);
    } else {
      st = hads::DepthwiseConv2DInt8(l.conv, p, a.in_channels, x,
                                     l.weights.data(), y);
    }
    if (st != hads::kOk) return 1;
  }
  return 0;
}

volatile int32_t g_subnetwork = 0;  // the model input `subnetwork`
ActiveSubnetwork g_sink[16];

__attribute__((noinline)) void Empty() { __asm__ volatile(""); }

__attribute__((noinline)) void SwitchWrite(int32_t k) { g_subnetwork = k; }

// Switch + what each HADS Eval does with the integer before its kernel.
__attribute__((noinline)) int SwitchLookup(const Net* net, int32_t k) {
  g_subnetwork = k;
  int n = 0;
  for (const Layer& l : net->layers) {
    if (l.kind == Kind::kAvgPool) continue;
    if (hads::SelectSubnetwork(l.tables, g_subnetwork, &g_sink[n++]) !=
        hads::kOk)
      return 1;
  }
  return 0;
}

std::vector<Spec> DnnSpecs(const std::vector<int>& w) {
  const int s = static_cast<int>(w.size());
  const std::vector<int> in0(s, 490), out_last(s, 12);
  return {
      {Kind::kFc, 1, 1, 1, 1, 1, 490, w[0], 1, in0, w, 1},
      {Kind::kFc, 1, 1, 1, 1, 1, w[0], w[0], 1, w, w, 1},
      {Kind::kFc, 1, 1, 1, 1, 1, w[0], w[0], 1, w, w, 1},
      {Kind::kFc, 1, 1, 1, 1, 1, w[0], 12, 1, w, out_last, 0},
  };
}

std::vector<Spec> DsCnnSpecs(const std::vector<int>& w) {
  const int s = static_cast<int>(w.size());
  const std::vector<int> one(s, 1), out_last(s, 12);
  std::vector<Spec> specs = {
      {Kind::kConv, 49, 10, 10, 4, 2, 1, w[0], 1, one, w, 1}};
  for (int b = 0; b < 4; ++b) {
    specs.push_back({Kind::kDw, 25, 5, 3, 3, 1, w[0], w[0], 1, w, w, 1});
    specs.push_back({Kind::kConv, 25, 5, 1, 1, 1, w[0], w[0], 1, w, w, 1});
  }
  specs.push_back({Kind::kAvgPool, 25, 5, 25, 5, 1, w[0], w[0], 1, w, w, 0});
  specs.push_back({Kind::kFc, 1, 1, 1, 1, 1, w[0], 12, 1, w, out_last, 0});
  return specs;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s dnn|dscnn W0 [W1 ...]\n", argv[0]);
    return 1;
  }
  std::vector<int> widths;
  for (int i = 2; i < argc; ++i) widths.push_back(std::atoi(argv[i]));
  const bool dnn = std::strcmp(argv[1], "dnn") == 0;
  const std::vector<Spec> specs = dnn ? DnnSpecs(widths) : DsCnnSpecs(widths);
  const int s = static_cast<int>(widths.size());

  Net nested = Build(specs, -1);
  std::vector<Net> standalone;
  for (int k = 0; k < s; ++k) standalone.push_back(Build(specs, k));

  // Correctness first: nested subnetwork k == standalone k (logits).
  for (int k = 0; k < s; ++k) {
    g_subnetwork = k;
    volatile int32_t zero = 0;
    if (Run(&nested, &g_subnetwork) != 0 || Run(&standalone[k], &zero) != 0) {
      std::fprintf(stderr, "kernel error\n");
      return 2;
    }
    const std::vector<int8_t>& a = nested.buffers.back();
    const std::vector<int8_t>& b = standalone[k].buffers.back();
    if (a.size() != b.size() || std::memcmp(a.data(), b.data(), a.size())) {
      std::fprintf(stderr, "subnetwork %d: nested != standalone\n", k);
      return 2;
    }
  }
  std::printf("nested == standalone for all %d subnetworks\n", s);

  char label[64];
  CALLGRIND_ZERO_STATS;
  Empty();
  CALLGRIND_DUMP_STATS_AT("empty");
  CALLGRIND_ZERO_STATS;
  SwitchWrite(s - 1);
  CALLGRIND_DUMP_STATS_AT("switch_write");
  CALLGRIND_ZERO_STATS;
  SwitchLookup(&nested, s - 1);
  CALLGRIND_DUMP_STATS_AT("switch_lookup");
  for (int k = 0; k < s; ++k) {
    g_subnetwork = k;
    CALLGRIND_ZERO_STATS;
    Run(&nested, &g_subnetwork);
    std::snprintf(label, sizeof(label), "nested_k%d", k);
    CALLGRIND_DUMP_STATS_AT(label);
  }
  for (int k = 0; k < s; ++k) {
    volatile int32_t zero = 0;
    CALLGRIND_ZERO_STATS;
    Run(&standalone[k], &zero);
    std::snprintf(label, sizeof(label), "standalone_k%d", k);
    CALLGRIND_DUMP_STATS_AT(label);
  }
  return 0;
}
