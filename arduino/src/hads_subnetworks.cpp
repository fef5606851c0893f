/* Copyright 2026 The hads_keras Authors. Licensed under the Apache License 2.0.
==============================================================================*/
#include "hads_subnetworks.h"

namespace hads {

const char* ResultString(Result status) {
  switch (status) {
    case Result::kOk:
      return "ok";
    case Result::kNotStarted:
      return "not started: call begin() first and check its status";
    case Result::kBadTable:
      return "bad subnetwork table: need count >= 1 and MACs non-increasing";
    case Result::kOutOfRange:
      return "subnetwork index out of range";
    case Result::kNoFit:
      return "no subnetwork fits the budget";
    case Result::kNoSubnetworkInput:
      return "model has no int32[1] input named 'subnetwork': export it "
             "with hads_keras (nested TFLite)";
    case Result::kBadModel:
      return "bad model: missing or other TFLite schema version";
    case Result::kInterpreterError:
      return "TFLite Micro interpreter error (see its log)";
    case Result::kBadChecksum:
      return "model CRC-32 mismatch: its bytes changed since the export "
             "(corrupt flash or copy); flash it again";
    case Result::kNoChecksum:
      return "model has no hads_crc32 metadata to check: export it again "
             "with hads_keras";
    case Result::kNoLatency:
      return "cost table has no latency in a time unit: export with a "
             "latency table in us, or in cycles and pass the clock rate";
  }
  return "unknown status";
}

Result ValidateTable(const CostTable& table) {
  if (table.count < 1 || table.entries == nullptr) return Result::kBadTable;
  if (static_cast<uint8_t>(table.latency_unit) >
      static_cast<uint8_t>(LatencyUnit::kInstructions)) {
    return Result::kBadTable;
  }
  for (int32_t k = 1; k < table.count; ++k) {
    if (table.entries[k].macs > table.entries[k - 1].macs) {
      return Result::kBadTable;
    }
  }
  return Result::kOk;
}

SubnetworkSelector::SubnetworkSelector()
    : table_{0, nullptr, LatencyUnit::kNone}, slot_(nullptr), current_(-1) {}

Result SubnetworkSelector::begin(const CostTable& table, int32_t* slot) {
  slot_ = nullptr;
  current_ = -1;
  const Result status = ValidateTable(table);
  if (status != Result::kOk) return status;
  if (slot == nullptr) return Result::kNoSubnetworkInput;
  table_ = table;
  slot_ = slot;
  return select(0);
}

uint32_t SubnetworkSelector::macs(int k) const {
  return (k >= 0 && k < count()) ? table_.entries[k].macs : 0u;
}

uint32_t SubnetworkSelector::params(int k) const {
  return (k >= 0 && k < count()) ? table_.entries[k].params : 0u;
}

uint32_t SubnetworkSelector::latency(int k) const {
  return (k >= 0 && k < count()) ? table_.entries[k].latency : 0u;
}

Result SubnetworkSelector::select(int k) {
  if (slot_ == nullptr) return Result::kNotStarted;
  if (k < 0 || k >= table_.count) return Result::kOutOfRange;
  *slot_ = static_cast<int32_t>(k);
  current_ = k;
  return Result::kOk;
}

Result SubnetworkSelector::refresh() {
  if (slot_ == nullptr) return Result::kNotStarted;
  *slot_ = static_cast<int32_t>(current_);
  return Result::kOk;
}

Result SubnetworkSelector::selectForBudget(uint32_t max_macs) {
  if (slot_ == nullptr) return Result::kNotStarted;
  // MACs are non-increasing with k (checked in begin()), so the first
  // subnetwork within budget is the largest one that fits.
  for (int k = 0; k < table_.count; ++k) {
    if (table_.entries[k].macs <= max_macs) return select(k);
  }
  return Result::kNoFit;
}

Result SubnetworkSelector::selectForLatency(uint32_t max_us,
                                            uint32_t clock_hz) {
  if (slot_ == nullptr) return Result::kNotStarted;
  // Both sides in cycles x 1e6 (or us): no division, no rounding.
  uint64_t scale = 1u;  // per unit of the table
  uint64_t budget = max_us;
  if (table_.latency_unit == LatencyUnit::kCycles) {
    if (clock_hz == 0) return Result::kNoLatency;
    scale = 1000000u;
    budget = static_cast<uint64_t>(max_us) * clock_hz;
  } else if (table_.latency_unit != LatencyUnit::kMicroseconds) {
    return Result::kNoLatency;
  }
  for (int k = 0; k < table_.count; ++k) {
    if (table_.entries[k].latency * scale <= budget) return select(k);
  }
  return Result::kNoFit;
}

}  // namespace hads
