// Latency probe: times the HADS int8 kernels of one model's layers at a grid
// of active widths, on full-size buffers, and prints a CSV that hads_keras
// reads back into a latency table (hads_keras/latency_probe.py,
// docs/latency_tables.md).
//
// The same code runs on QEMU's Cortex-M4 board (the CMSDK timer under
// -icount: instructions) and on a real board (DWT CYCCNT: cycles); the
// caller gives the timer, the output function and the memory. A generated
// header (`hads latency header`) describes the model's operators and the
// grid; see arduino/examples/LatencyTable.
//
// Output (one line each, '\n'):
//   # hads-latency-probe version=1 model=<name> fingerprint=<sha256> timer=<t>
//   layer,in_width,out_width,<unit>
//   <layer>,<active in>,<active out>,<median cost>        one per grid point
//   <subnetwork k>,0,0,<cost>                             one per chain
//   # done
// A kernel that refuses its arguments ends the sweep with
//   # error layer=<layer> status=<StatusString>
// and the status is returned (nothing after it is printed).
//
// Plain C++14, no allocation, no static RAM, like hads_kernels.
#ifndef HADS_TFLM_OPS_HADS_LATENCY_PROBE_H_
#define HADS_TFLM_OPS_HADS_LATENCY_PROBE_H_

#include <cstdint>

#include "hads_kernels.h"

namespace hads {
namespace probe {

enum OperatorKind : int32_t {
  kFullyConnected = 0,
  kConv2D = 1,
  kDepthwiseConv2D = 2,
  // A builtin AVERAGE_POOL_2D over the whole map: it runs over all channels
  // whatever the subnetwork (inactive ones hold the zero point).
  kAveragePool = 3,
};

// Full-size shape of one operator (what hads_keras/latency_probe.py writes).
struct OperatorSpec {
  int32_t kind;  // OperatorKind
  // Conv / depthwise / pool: NHWC input of one image. Fully connected:
  // in_height = batches (rows), in_width = positions per channel (a flattened
  // input), in_channels = full channels per position.
  int32_t in_height, in_width, in_channels;
  int32_t filter_height, filter_width;
  int32_t out_channels;  // full; depthwise: in_channels * depth_multiplier
  int32_t stride_height, stride_width;
  int32_t padding;  // hads::Padding
  int32_t depth_multiplier;
};

// One measurement: operator index and active widths (depthwise: the output
// is active_in * depth_multiplier and active_out is ignored; average pool:
// both ignored, all channels run).
struct GridPoint {
  int32_t op;
  int32_t active_in;
  int32_t active_out;
};

struct Sweep {
  const char* model;        // model name
  const char* fingerprint;  // hads_keras.latency.model_fingerprint
  const OperatorSpec* operators;
  const char* const* names;  // layer name per operator
  int32_t num_operators;
  const GridPoint* points;
  int32_t num_points;
  // Optional whole-subnetwork runs: num_chains rows of 2 * num_operators
  // widths (active in, active out of every operator, in order); all
  // operators run back to back on ping-pong buffers, timed as one.
  const int32_t* chains;
  int32_t num_chains;
  int32_t repeats;  // timed calls per point (1..15); the median is printed
};

// A free-running up-counter and what one count is worth in `unit`.
struct Timer {
  const char* name;  // e.g. "qemu-cmsdk-timer", "dwt-cyccnt"
  const char* unit;  // "instructions" or "cycles"
  uint32_t (*now)();
  uint32_t units_per_count;
};

// Prints `text` (a whole line or part of one).
typedef void (*WriteFn)(const char* text);

// Bytes of memory RunSweep needs for `sweep` (largest single operator, and
// all operators at once when it has chains); 0 for an invalid sweep.
int32_t SweepArenaBytes(const Sweep& sweep);

// Runs the sweep; `arena` (8-byte aligned, `arena_bytes` >= SweepArenaBytes)
// holds the buffers. Returns kErrBadShape / kErrBadTable for an invalid
// description, kErrBadShape for too small an arena (nothing is timed), or
// the first kernel error.
Status RunSweep(const Sweep& sweep, const Timer& timer, WriteFn write,
                uint8_t* arena, int32_t arena_bytes);

}  // namespace probe
}  // namespace hads

#endif  // HADS_TFLM_OPS_HADS_LATENCY_PROBE_H_
