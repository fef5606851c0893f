/* Copyright 2026 The hads_keras Authors. Licensed under the Apache License 2.0.

The board-independent half of the HADS Arduino library: the subnetwork table
of a nested model and the selector that switches between subnetworks by
writing one integer. No TFLite Micro, no Arduino core, no dynamic memory, so
it builds (and is cross-compiled in CI) on any C++11 compiler.
==============================================================================*/
#ifndef HADS_SUBNETWORKS_H_
#define HADS_SUBNETWORKS_H_

#include <stdint.h>

namespace hads {

// Result of every library call. Nothing in the library aborts or spins:
// callers test the status and decide (print it with ResultString()).
enum class Result : uint8_t {
  kOk = 0,
  kNotStarted,          // begin() was not called or did not succeed.
  kBadTable,            // Subnetwork table empty, null or not ordered.
  kOutOfRange,          // Subnetwork index outside 0 .. count()-1.
  kNoFit,               // No subnetwork fits the requested budget.
  kNoSubnetworkInput,   // Model has no int32[1] input named "subnetwork".
  kBadModel,            // Model flatbuffer missing or of another schema.
  kInterpreterError,    // AllocateTensors() or Invoke() failed.
  kBadChecksum,         // The model's bytes differ from its exported CRC-32.
  kNoChecksum,          // The model carries no CRC-32 (hads_crc32) to check.
  kNoLatency,           // The cost table has no latency in a time unit.
};

// Human-readable name of a status ("ok", "out of range", ...).
const char* ResultString(Result status);

// Unit of the latency column of a CostTable (the unit of the latency table
// the subnetworks were measured or solved with, docs/nested_tflite_format.md).
enum class LatencyUnit : uint8_t {
  kNone = 0,          // No latency: MACs and parameters only.
  kMicroseconds = 1,  // Time, e.g. measured on the board or the host.
  kCycles = 2,        // Core clock cycles (DWT CYCCNT): time = cycles / clock.
  kInstructions = 3,  // Instruction counts (emulator): not a time, so
                      // selectForLatency() refuses them (kNoLatency).
};

// Cost of one subnetwork, as written by the exporter (hads_model.h).
struct SubnetworkCost {
  uint32_t macs;     // Multiply-accumulates of one inference.
  uint32_t params;   // Weights and biases the subnetwork reads.
  uint32_t latency;  // One inference in CostTable::latency_unit (0: none);
                     // microseconds are rounded up, so a budget holds.
};

// The subnetwork table of a nested model. Subnetwork 0 is the full network;
// subnetworks are ordered from largest to smallest (MACs non-increasing), as
// in docs/nested_tflite_format.md.
struct CostTable {
  int32_t count;
  const SubnetworkCost* entries;
  LatencyUnit latency_unit;  // kNone when the table carries no latency.
};

// Checks that a table can be used: count >= 1, entries present, MACs
// non-increasing, a known latency unit. Returns kOk or kBadTable.
Result ValidateTable(const CostTable& table);

// Chooses and writes the active subnetwork index into an int32 slot (the
// model's `subnetwork` input tensor). Every HADS operator reads that slot at
// Invoke(), so switching costs one bounds check and one store.
class SubnetworkSelector {
 public:
  SubnetworkSelector();

  // Binds the table and the slot and selects subnetwork 0 (full network).
  // `slot` must stay valid while the selector is used.
  Result begin(const CostTable& table, int32_t* slot);

  bool ready() const { return slot_ != nullptr; }

  // Number of subnetworks (0 before a successful begin()).
  int count() const { return ready() ? table_.count : 0; }

  // MACs / parameters / latency (in latencyUnit()) of subnetwork k; 0 when
  // k is out of range.
  uint32_t macs(int k) const;
  uint32_t params(int k) const;
  uint32_t latency(int k) const;
  LatencyUnit latencyUnit() const {
    return ready() ? table_.latency_unit : LatencyUnit::kNone;
  }

  // Activates subnetwork k: constant time. Out of range leaves the current
  // selection unchanged and returns kOutOfRange.
  Result select(int k);

  // Activates the largest subnetwork whose MACs do not exceed max_macs.
  // When even the smallest does not fit, nothing changes and kNoFit is
  // returned (the caller may still select(count() - 1)).
  Result selectForBudget(uint32_t max_macs);

  // Activates the largest subnetwork whose latency is at most max_us
  // microseconds: the first in table order that fits, as measured latency
  // need not fall strictly with k. A table in cycles is converted with
  // clock_hz, the core clock (cycles * 1e6 <= max_us * clock_hz, exact in
  // 64 bits). kNoLatency (nothing changes) for a table without latency, in
  // instructions, or in cycles with clock_hz == 0; kNoFit as above.
  Result selectForLatency(uint32_t max_us, uint32_t clock_hz = 0);

  // Index of the active subnetwork (-1 before begin()).
  int current() const { return current_; }

  // Writes current() into the slot again. TFLite Micro's memory planner may
  // reuse a model input's memory once its last reader has run, so Invoke()
  // can overwrite the `subnetwork` input (e.g. by a SOFTMAX after the last
  // HADS operator): call this before every Invoke(); NestedModel::invoke()
  // does. One store.
  Result refresh();

 private:
  CostTable table_;
  int32_t* slot_;
  int current_;
};

}  // namespace hads

#endif  // HADS_SUBNETWORKS_H_
