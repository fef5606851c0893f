// Latency probe of the HADS kernels; see hads_latency_probe.h.
#include "hads_latency_probe.h"

#include <cstdint>

namespace hads {
namespace probe {
namespace {

constexpr int32_t kMaxRepeats = 15;

// Sizes of one operator's buffers (elements, int8 unless noted).
struct Sizes {
  int32_t input, output, weights, channels;  // channels: int32 per-channel
  int32_t scratch;                           // bytes
};

// One operator set up in the arena: full-size weights and per-channel
// quantization, random values (instruction counts do not depend on them).
struct Prepared {
  const OperatorSpec* spec;
  ConvShape conv;
  int8_t* weights;
  int32_t* multiplier;
  int32_t* shift;
  int32_t* bias;
  int8_t* scratch;
  int32_t scratch_bytes;
};

int32_t Align8(int32_t bytes) { return (bytes + 7) & ~7; }

bool Positive(const OperatorSpec& s) {
  return s.in_height > 0 && s.in_width > 0 && s.in_channels > 0 &&
         s.out_channels > 0;
}

Status ShapeOf(const OperatorSpec& s, ConvShape* conv) {
  if (!Positive(s)) return kErrBadShape;
  if (s.kind == kFullyConnected || s.kind == kAveragePool) return kOk;
  if (s.kind != kConv2D && s.kind != kDepthwiseConv2D) return kErrBadShape;
  const int32_t multiplier = s.kind == kDepthwiseConv2D ? s.depth_multiplier : 1;
  if (multiplier < 1 || (s.kind == kDepthwiseConv2D &&
                         s.out_channels != s.in_channels * multiplier)) {
    return kErrBadShape;
  }
  return MakeConvShape(1, s.in_height, s.in_width, s.in_channels,
                       s.filter_height, s.filter_width, s.out_channels,
                       s.stride_height, s.stride_width,
                       static_cast<Padding>(s.padding), multiplier, conv);
}

Status SizesOf(const OperatorSpec& s, Sizes* sizes) {
  ConvShape conv;
  const Status status = ShapeOf(s, &conv);
  if (status != kOk) return status;
  const int32_t image = s.in_height * s.in_width * s.in_channels;
  sizes->input = image;
  sizes->channels = s.out_channels;
  sizes->scratch = 0;
  if (s.kind == kFullyConnected) {
    sizes->output = s.in_height * s.out_channels;
    sizes->weights = s.out_channels * s.in_width * s.in_channels;
  } else if (s.kind == kAveragePool) {
    sizes->output = s.in_channels;
    sizes->weights = 0;
    sizes->channels = 0;
  } else {
    sizes->output = conv.out_height * conv.out_width * conv.out_channels;
    sizes->weights = s.filter_height * s.filter_width *
                     (s.kind == kConv2D ? s.in_channels * s.out_channels
                                        : s.out_channels);
    sizes->scratch = s.kind == kConv2D ? Conv2DInt8ScratchBytes(conv) : 0;
  }
  return kOk;
}

// Bytes of the operator's own memory (weights, tables, scratch).
int32_t OwnBytes(const Sizes& z) {
  return Align8(z.weights) + 3 * Align8(4 * z.channels) + Align8(z.scratch);
}
int32_t Activation(const Sizes& z) {
  return Align8(z.input > z.output ? z.input : z.output);
}

// A bump allocator over the caller's arena.
struct Bump {
  uint8_t* next;
  uint8_t* end;
  void* Take(int32_t bytes) {
    uint8_t* p = next;
    next += Align8(bytes);
    return p;
  }
};

uint32_t NextRandom(uint32_t* state) {
  uint32_t x = *state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *state = x;
}

void Fill(int8_t* data, int32_t n, uint32_t* state) {
  for (int32_t i = 0; i < n; ++i) data[i] = static_cast<int8_t>(NextRandom(state));
}

// Places the operator's memory in the arena and fills it with random
// values (instruction counts do not depend on them).
void PrepareOperator(const OperatorSpec& s, const Sizes& z, Bump* bump,
                     uint32_t* rng, Prepared* p) {
  p->spec = &s;
  ShapeOf(s, &p->conv);  // checked by SizesOf
  p->weights = static_cast<int8_t*>(bump->Take(z.weights));
  p->multiplier = static_cast<int32_t*>(bump->Take(4 * z.channels));
  p->shift = static_cast<int32_t*>(bump->Take(4 * z.channels));
  p->bias = static_cast<int32_t*>(bump->Take(4 * z.channels));
  p->scratch = static_cast<int8_t*>(bump->Take(z.scratch));
  p->scratch_bytes = z.scratch;
  Fill(p->weights, z.weights, rng);
  for (int32_t c = 0; c < z.channels; ++c) {
    // Outputs spread over the int8 range for sums of ~2^13 products.
    p->multiplier[c] = 1518500250 + 1000 * c;
    p->shift[c] = -8;
    p->bias[c] = 64 * (c % 7) - 200;
  }
}

// TFLite's integer AVERAGE_POOL_2D over the whole map, every channel.
void AveragePool(const OperatorSpec& s, const int8_t* in, int8_t* out) {
  const int32_t n = s.in_height * s.in_width;
  for (int32_t c = 0; c < s.in_channels; ++c) {
    int32_t sum = 0;
    for (int32_t i = 0; i < n; ++i) sum += in[i * s.in_channels + c];
    out[c] = static_cast<int8_t>(sum > 0 ? (sum + n / 2) / n : (sum - n / 2) / n);
  }
}

Status RunOperator(const Prepared& p, int32_t active_in, int32_t active_out,
                   const int8_t* in, int8_t* out) {
  const OperatorSpec& s = *p.spec;
  if (s.kind == kAveragePool) {
    AveragePool(s, in, out);
    return kOk;
  }
  QuantizedParams q;
  q.input_offset = 5;
  q.output_offset = -128;  // a fused ReLU: clamp at the zero point
  q.act_min = -128;
  q.act_max = 127;
  q.output_multiplier = p.multiplier;
  q.output_shift = p.shift;
  q.bias = p.bias;
  if (s.kind == kFullyConnected) {
    const FullyConnectedShape shape = {s.in_height, s.in_width, s.in_channels,
                                       s.out_channels};
    return FullyConnectedInt8(shape, q, active_in, active_out, in, p.weights,
                              out);
  }
  if (s.kind == kConv2D) {
    return Conv2DInt8(p.conv, q, active_in, active_out, in, p.weights, out,
                      p.scratch, p.scratch_bytes);
  }
  return DepthwiseConv2DInt8(p.conv, q, active_in, in, p.weights, out);
}

// ---------------------------------------------------------------------------
// Output without printf (not every target links one).
void WriteUint(WriteFn write, uint32_t value) {
  char buf[12];
  int i = static_cast<int>(sizeof(buf)) - 1;
  buf[i] = '\0';
  do {
    buf[--i] = static_cast<char>('0' + value % 10u);
    value /= 10u;
  } while (value != 0u && i > 0);
  write(&buf[i]);
}

void WriteRow(WriteFn write, const char* name, int32_t in, int32_t out,
              uint32_t cost) {
  write(name);
  write(",");
  WriteUint(write, static_cast<uint32_t>(in));
  write(",");
  WriteUint(write, static_cast<uint32_t>(out));
  write(",");
  WriteUint(write, cost);
  write("\n");
}

Status Fail(WriteFn write, const char* name, Status status) {
  write("# error layer=");
  write(name);
  write(" status=");
  write(StatusString(status));
  write("\n");
  return status;
}

uint32_t Median(uint32_t* values, int32_t n) {
  for (int32_t i = 1; i < n; ++i) {  // insertion sort: n <= kMaxRepeats
    const uint32_t v = values[i];
    int32_t j = i - 1;
    for (; j >= 0 && values[j] > v; --j) values[j + 1] = values[j];
    values[j + 1] = v;
  }
  return values[n / 2];
}

Status CheckSweep(const Sweep& sweep) {
  if (sweep.model == nullptr || sweep.fingerprint == nullptr ||
      sweep.operators == nullptr || sweep.names == nullptr ||
      (sweep.num_points > 0 && sweep.points == nullptr) ||
      (sweep.num_chains > 0 && sweep.chains == nullptr)) {
    return kErrNullPointer;
  }
  if (sweep.num_operators < 1 || sweep.num_points < 0 ||
      sweep.num_chains < 0 || sweep.repeats < 1 ||
      sweep.repeats > kMaxRepeats) {
    return kErrBadTable;
  }
  for (int32_t i = 0; i < sweep.num_points; ++i) {
    if (sweep.points[i].op < 0 || sweep.points[i].op >= sweep.num_operators) {
      return kErrBadTable;
    }
  }
  return kOk;
}

}  // namespace

int32_t SweepArenaBytes(const Sweep& sweep) {
  if (CheckSweep(sweep) != kOk) return 0;
  int32_t single = 0, own = 0, activation = 0;
  for (int32_t i = 0; i < sweep.num_operators; ++i) {
    Sizes z;
    if (SizesOf(sweep.operators[i], &z) != kOk) return 0;
    const int32_t one = OwnBytes(z) + Align8(z.input) + Align8(z.output);
    if (one > single) single = one;
    own += OwnBytes(z);
    if (Activation(z) > activation) activation = Activation(z);
  }
  const int32_t chained =
      sweep.num_chains > 0
          ? own + 2 * activation +
                Align8(sweep.num_operators * static_cast<int32_t>(sizeof(Prepared)))
          : 0;
  return single > chained ? single : chained;
}

Status RunSweep(const Sweep& sweep, const Timer& timer, WriteFn write,
                uint8_t* arena, int32_t arena_bytes) {
  if (write == nullptr || arena == nullptr || timer.now == nullptr) {
    return kErrNullPointer;
  }
  const Status valid = CheckSweep(sweep);
  if (valid != kOk) return valid;
  const int32_t needed = SweepArenaBytes(sweep);
  if (needed == 0 || arena_bytes < needed) return kErrBadShape;
  write("# hads-latency-probe version=1 model=");
  write(sweep.model);
  write(" fingerprint=");
  write(sweep.fingerprint);
  write(" timer=");
  write(timer.name);
  write("\nlayer,in_width,out_width,");
  write(timer.unit);
  write("\n");

  uint32_t rng = 0x12345678u;
  uint32_t samples[kMaxRepeats];
  for (int32_t i = 0; i < sweep.num_points; ++i) {
    const GridPoint& point = sweep.points[i];
    const OperatorSpec& s = sweep.operators[point.op];
    Sizes z;
    SizesOf(s, &z);  // checked by SweepArenaBytes
    Bump bump = {arena, arena + arena_bytes};
    Prepared p;
    PrepareOperator(s, z, &bump, &rng, &p);
    int8_t* in = static_cast<int8_t*>(bump.Take(z.input));
    int8_t* out = static_cast<int8_t*>(bump.Take(z.output));
    Fill(in, z.input, &rng);
    for (int32_t r = 0; r < sweep.repeats; ++r) {
      const uint32_t start = timer.now();
      const Status status =
          RunOperator(p, point.active_in, point.active_out, in, out);
      const uint32_t stop = timer.now();
      if (status != kOk) return Fail(write, sweep.names[point.op], status);
      samples[r] = (stop - start) * timer.units_per_count;
    }
    WriteRow(write, sweep.names[point.op], point.active_in, point.active_out,
             Median(samples, sweep.repeats));
  }

  if (sweep.num_chains > 0) {
    // Every operator set up once, then each subnetwork runs them back to
    // back on ping-pong buffers, timed as one.
    Bump bump = {arena, arena + arena_bytes};
    int32_t activation = 0;
    for (int32_t i = 0; i < sweep.num_operators; ++i) {
      Sizes z;
      SizesOf(sweep.operators[i], &z);
      if (Activation(z) > activation) activation = Activation(z);
    }
    Prepared* prepared = static_cast<Prepared*>(
        bump.Take(sweep.num_operators * static_cast<int32_t>(sizeof(Prepared))));
    int8_t* buffers[2] = {static_cast<int8_t*>(bump.Take(activation)),
                          static_cast<int8_t*>(bump.Take(activation))};
    Fill(buffers[0], activation, &rng);
    for (int32_t i = 0; i < sweep.num_operators; ++i) {
      Sizes z;
      SizesOf(sweep.operators[i], &z);
      PrepareOperator(sweep.operators[i], z, &bump, &rng, &prepared[i]);
    }
    for (int32_t k = 0; k < sweep.num_chains; ++k) {
      const int32_t* widths = sweep.chains + 2 * k * sweep.num_operators;
      Status status = kOk;
      int32_t failed = 0;
      const uint32_t start = timer.now();
      for (int32_t i = 0; i < sweep.num_operators && status == kOk; ++i) {
        status = RunOperator(prepared[i], widths[2 * i], widths[2 * i + 1],
                             buffers[i & 1], buffers[(i + 1) & 1]);
        failed = i;
      }
      const uint32_t stop = timer.now();
      if (status != kOk) return Fail(write, sweep.names[failed], status);
      write("<subnetwork ");
      WriteUint(write, static_cast<uint32_t>(k));
      write(">,0,0,");
      WriteUint(write, (stop - start) * timer.units_per_count);
      write("\n");
    }
  }
  write("# done\n");
  return kOk;
}

}  // namespace probe
}  // namespace hads
