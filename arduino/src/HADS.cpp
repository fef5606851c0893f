/* Copyright 2026 The hads_keras Authors. Licensed under the Apache License 2.0.
==============================================================================*/
#include "HADS.h"

#include <string.h>

namespace hads {
namespace {

// Index among the subgraph's inputs of the tensor named `name`, or -1.
int FindInputByName(const tflite::Model* model, const char* name) {
  const auto* subgraphs = model->subgraphs();
  if (subgraphs == nullptr || subgraphs->size() < 1) return -1;
  const tflite::SubGraph* subgraph = subgraphs->Get(0);
  const auto* inputs = subgraph->inputs();
  const auto* tensors = subgraph->tensors();
  if (inputs == nullptr || tensors == nullptr) return -1;
  for (flatbuffers::uoffset_t i = 0; i < inputs->size(); ++i) {
    const int32_t t = inputs->Get(i);
    if (t < 0 || static_cast<flatbuffers::uoffset_t>(t) >= tensors->size()) {
      continue;
    }
    const flatbuffers::String* tensor_name = tensors->Get(t)->name();
    if (tensor_name != nullptr && strcmp(tensor_name->c_str(), name) == 0) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

}  // namespace

Result verifyModel(const unsigned char* model_data, size_t model_size) {
  switch (VerifyModelChecksum(model_data, model_size)) {
    case IntegrityStatus::kOk:
      return Result::kOk;
    case IntegrityStatus::kMismatch:
      return Result::kBadChecksum;
    case IntegrityStatus::kNoChecksum:
      return Result::kNoChecksum;
    case IntegrityStatus::kBadModel:
      break;
  }
  return Result::kBadModel;
}

Result NestedModel::beginVerified(const unsigned char* model_data,
                                  size_t model_size,
                                  tflite::MicroInterpreter& interpreter,
                                  const CostTable& table) {
  const Result status = verifyModel(model_data, model_size);
  if (status != Result::kOk) return status;
  return begin(tflite::GetModel(model_data), interpreter, table);
}

NestedModel::NestedModel()
    : interpreter_(nullptr), subnetwork_input_(-1), data_input_(-1) {}

Result NestedModel::begin(const tflite::Model* model,
                          tflite::MicroInterpreter& interpreter,
                          const CostTable& table) {
  interpreter_ = nullptr;
  subnetwork_input_ = -1;
  data_input_ = -1;
  if (model == nullptr || model->version() != TFLITE_SCHEMA_VERSION) {
    return Result::kBadModel;
  }
  const Result table_status = ValidateTable(table);
  if (table_status != Result::kOk) return table_status;

  const int index = FindInputByName(model, kSubnetworkInputName);
  if (index < 0 || static_cast<size_t>(index) >= interpreter.inputs_size()) {
    return Result::kNoSubnetworkInput;
  }
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    return Result::kInterpreterError;
  }
  TfLiteTensor* slot = interpreter.input(index);
  if (slot == nullptr || slot->type != kTfLiteInt32 ||
      slot->bytes != sizeof(int32_t) || slot->data.i32 == nullptr) {
    return Result::kNoSubnetworkInput;
  }
  // The input tensors keep their place in the arena after AllocateTensors(),
  // so the selector can write the index straight into the tensor.
  const Result status = selector_.begin(table, slot->data.i32);
  if (status != Result::kOk) return status;

  interpreter_ = &interpreter;
  subnetwork_input_ = index;
  for (size_t i = 0; i < interpreter.inputs_size(); ++i) {
    if (static_cast<int>(i) != index) {
      data_input_ = static_cast<int>(i);
      break;
    }
  }
  return Result::kOk;
}

Result NestedModel::invoke() {
  if (interpreter_ == nullptr) return Result::kNotStarted;
  selector_.refresh();
  return interpreter_->Invoke() == kTfLiteOk ? Result::kOk
                                             : Result::kInterpreterError;
}

TfLiteTensor* NestedModel::input() {
  if (interpreter_ == nullptr || data_input_ < 0) return nullptr;
  return interpreter_->input(data_input_);
}

TfLiteTensor* NestedModel::output(int index) {
  if (interpreter_ == nullptr || index < 0 ||
      static_cast<size_t>(index) >= interpreter_->outputs_size()) {
    return nullptr;
  }
  return interpreter_->output(index);
}

int NestedModel::argmax(int output_index) {
  const TfLiteTensor* out = output(output_index);
  if (out == nullptr || out->data.raw == nullptr) return -1;
  int best = -1;
  if (out->type == kTfLiteInt8) {
    const int n = static_cast<int>(out->bytes);
    for (int i = 0; i < n; ++i) {
      if (best < 0 || out->data.int8[i] > out->data.int8[best]) best = i;
    }
  } else if (out->type == kTfLiteFloat32) {
    const int n = static_cast<int>(out->bytes / sizeof(float));
    for (int i = 0; i < n; ++i) {
      if (best < 0 || out->data.f[i] > out->data.f[best]) best = i;
    }
  }
  return best;
}

}  // namespace hads
