// tflm_runner: runs a (nested) .tflite model in the real TFLite Micro
// interpreter on the host, for tests/native/test_tflm_interpreter.py.
//
// Usage:
//   tflm_runner MODEL.tflite INPUT.bin OUTPUT_PREFIX [K ...]
//               [--arena-bytes N]
//
// INPUT.bin holds one or more int8 samples back to back, each exactly the
// byte size of the model's data input. For every subnetwork K named on the
// command line the runner writes K into the model input `subnetwork`
// (int32 [1], docs/nested_tflite_format.md), runs every sample and writes
// the int8 outputs, back to back, to OUTPUT_PREFIX_k<K>.bin. A model without
// a `subnetwork` input (a plain builtin model) is run once, with no K, and
// writes OUTPUT_PREFIX.bin. A one-line summary per run goes to stdout.
//
// Builtin operators are registered from a fixed list (RegisterOps below),
// the HADS custom operators with hads::AddHadsOps() (tflm_ops/hads_ops.h);
// build it together with tflm_ops/*.cc and TFLite Micro's library.
//
// Errors print a message to stderr and return a non-zero exit code; nothing
// aborts on bad input.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tflm_ops/hads_ops.h"

namespace {

// Builtin operators that the exporter's models (DNN, CNN, DS-CNN families)
// and the harness's plain models use, plus the three HADS custom operators.
constexpr int kNumBuiltinOps = 14;
constexpr int kNumHadsOps = 3;
using OpResolver = tflite::MicroMutableOpResolver<kNumBuiltinOps + kNumHadsOps>;

constexpr size_t kDefaultArenaBytes = 1 << 20;
constexpr char kSubnetworkInputName[] = "subnetwork";

bool RegisterOps(OpResolver& resolver) {
  const TfLiteStatus statuses[kNumBuiltinOps] = {
      resolver.AddFullyConnected(), resolver.AddConv2D(),
      resolver.AddDepthwiseConv2D(), resolver.AddReshape(),
      resolver.AddSoftmax(),        resolver.AddMean(),
      resolver.AddAveragePool2D(),  resolver.AddMaxPool2D(),
      resolver.AddQuantize(),       resolver.AddDequantize(),
      resolver.AddRelu(),           resolver.AddRelu6(),
      resolver.AddAdd(),            resolver.AddPad(),
  };
  for (TfLiteStatus status : statuses) {
    if (status != kTfLiteOk) {
      std::fprintf(stderr, "error: registering a builtin operator failed\n");
      return false;
    }
  }
  if (hads::AddHadsOps(resolver) != kTfLiteOk) {
    std::fprintf(stderr, "error: hads::AddHadsOps failed\n");
    return false;
  }
  return true;
}

// Reads a whole file into `out`. The flatbuffer needs 16-byte alignment,
// which std::vector's allocator gives on the host (operator new aligns to
// __STDCPP_DEFAULT_NEW_ALIGNMENT__ = 16 on x86-64).
bool ReadFile(const char* path, std::vector<uint8_t>* out) {
  FILE* f = std::fopen(path, "rb");
  if (f == nullptr) {
    std::fprintf(stderr, "error: cannot open '%s'\n", path);
    return false;
  }
  out->clear();
  uint8_t chunk[4096];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f)) > 0) {
    out->insert(out->end(), chunk, chunk + n);
  }
  const bool ok = std::ferror(f) == 0;
  std::fclose(f);
  if (!ok) std::fprintf(stderr, "error: cannot read '%s'\n", path);
  return ok;
}

bool WriteFile(const std::string& path, const std::vector<int8_t>& data) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    std::fprintf(stderr, "error: cannot create '%s'\n", path.c_str());
    return false;
  }
  const size_t written = std::fwrite(data.data(), 1, data.size(), f);
  const bool ok = (std::fclose(f) == 0) && written == data.size();
  if (!ok) std::fprintf(stderr, "error: cannot write '%s'\n", path.c_str());
  return ok;
}

// Parses a non-negative decimal integer; false on anything else.
bool ParseInt(const char* text, long long max_value, long long* value) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (*end != '\0' || v < 0 || v > max_value) return false;
  *value = v;
  return true;
}

// Positions, among the interpreter's inputs, of the data input and of the
// `subnetwork` input (-1 when the model has none), found by tensor name in
// the model's main subgraph (TfLiteTensor carries no name under
// TF_LITE_STATIC_MEMORY).
bool FindInputs(const tflite::Model* model, int* data_input,
                int* subnetwork_input) {
  *data_input = -1;
  *subnetwork_input = -1;
  const auto* subgraphs = model->subgraphs();
  if (subgraphs == nullptr || subgraphs->size() < 1) {
    std::fprintf(stderr, "error: model has no subgraph\n");
    return false;
  }
  const tflite::SubGraph* graph = subgraphs->Get(0);
  const auto* inputs = graph->inputs();
  const auto* tensors = graph->tensors();
  if (inputs == nullptr || tensors == nullptr) {
    std::fprintf(stderr, "error: model's subgraph 0 has no inputs/tensors\n");
    return false;
  }
  for (uint32_t i = 0; i < inputs->size(); ++i) {
    const int32_t tensor_index = inputs->Get(i);
    if (tensor_index < 0 ||
        static_cast<uint32_t>(tensor_index) >= tensors->size()) {
      std::fprintf(stderr, "error: model input %u names tensor %d, out of "
                   "range\n", i, static_cast<int>(tensor_index));
      return false;
    }
    const auto* name = tensors->Get(tensor_index)->name();
    const bool is_subnetwork =
        name != nullptr && std::strcmp(name->c_str(), kSubnetworkInputName) == 0;
    int* slot = is_subnetwork ? subnetwork_input : data_input;
    if (*slot != -1) {
      std::fprintf(stderr, "error: model has more than one %s input; the "
                   "runner supports one data input and one '%s' input\n",
                   is_subnetwork ? "'subnetwork'" : "data",
                   kSubnetworkInputName);
      return false;
    }
    *slot = static_cast<int>(i);
  }
  if (*data_input == -1) {
    std::fprintf(stderr, "error: model has no data input\n");
    return false;
  }
  return true;
}

void PrintUsage() {
  std::fprintf(stderr,
               "usage: tflm_runner MODEL.tflite INPUT.bin OUTPUT_PREFIX [K ...] "
               "[--arena-bytes N]\n"
               "  INPUT.bin: int8 samples back to back; one output file per "
               "subnetwork K\n  (OUTPUT_PREFIX_k<K>.bin), or OUTPUT_PREFIX.bin "
               "for a model without a 'subnetwork' input.\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<const char*> positional;
  size_t arena_bytes = kDefaultArenaBytes;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--arena-bytes") == 0) {
      long long v = 0;
      if (i + 1 >= argc || !ParseInt(argv[i + 1], 1LL << 31, &v) || v == 0) {
        std::fprintf(stderr, "error: --arena-bytes needs a positive integer\n");
        return 2;
      }
      arena_bytes = static_cast<size_t>(v);
      ++i;
    } else {
      positional.push_back(argv[i]);
    }
  }
  if (positional.size() < 3) {
    PrintUsage();
    return 2;
  }
  const char* model_path = positional[0];
  const char* input_path = positional[1];
  const std::string output_prefix = positional[2];
  std::vector<int32_t> subnetworks;
  for (size_t i = 3; i < positional.size(); ++i) {
    long long k = 0;
    if (!ParseInt(positional[i], INT32_MAX, &k)) {
      std::fprintf(stderr, "error: subnetwork index '%s' is not a "
                   "non-negative integer\n", positional[i]);
      return 2;
    }
    subnetworks.push_back(static_cast<int32_t>(k));
  }

  std::vector<uint8_t> model_data;
  if (!ReadFile(model_path, &model_data)) return 1;
  flatbuffers::Verifier verifier(model_data.data(), model_data.size());
  if (!tflite::VerifyModelBuffer(verifier)) {
    std::fprintf(stderr, "error: '%s' is not a valid .tflite flatbuffer\n",
                 model_path);
    return 1;
  }
  const tflite::Model* model = tflite::GetModel(model_data.data());
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    std::fprintf(stderr, "error: model schema version %u, runner expects %d\n",
                 static_cast<unsigned>(model->version()),
                 TFLITE_SCHEMA_VERSION);
    return 1;
  }
  int data_input = -1;
  int subnetwork_input = -1;
  if (!FindInputs(model, &data_input, &subnetwork_input)) return 1;
  if (subnetwork_input == -1 && !subnetworks.empty()) {
    std::fprintf(stderr, "error: model has no '%s' input, but subnetworks "
                 "were given; run a plain model without K\n",
                 kSubnetworkInputName);
    return 2;
  }
  if (subnetwork_input != -1 && subnetworks.empty()) {
    std::fprintf(stderr, "error: model has a '%s' input; name at least one "
                 "subnetwork K\n", kSubnetworkInputName);
    return 2;
  }

  static OpResolver resolver;
  if (!RegisterOps(resolver)) return 1;
  std::vector<uint8_t> arena(arena_bytes);
  tflite::MicroInterpreter interpreter(model, resolver, arena.data(),
                                       arena.size());
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    std::fprintf(stderr, "error: AllocateTensors failed (see message above; "
                 "arena is %zu bytes, raise it with --arena-bytes)\n",
                 arena.size());
    return 1;
  }

  TfLiteTensor* input = interpreter.input(data_input);
  TfLiteTensor* output = interpreter.output(0);
  if (input == nullptr || output == nullptr) {
    std::fprintf(stderr, "error: model input/output tensor unavailable\n");
    return 1;
  }
  if (input->type != kTfLiteInt8 || output->type != kTfLiteInt8) {
    std::fprintf(stderr, "error: data input and output 0 must be int8 "
                 "(got types %d and %d)\n", static_cast<int>(input->type),
                 static_cast<int>(output->type));
    return 1;
  }
  TfLiteTensor* subnetwork = nullptr;
  if (subnetwork_input != -1) {
    subnetwork = interpreter.input(subnetwork_input);
    if (subnetwork == nullptr || subnetwork->type != kTfLiteInt32 ||
        subnetwork->bytes != sizeof(int32_t)) {
      std::fprintf(stderr, "error: input '%s' must be int32 of shape [1]\n",
                   kSubnetworkInputName);
      return 1;
    }
  }

  std::vector<uint8_t> samples;
  if (!ReadFile(input_path, &samples)) return 1;
  if (samples.empty() || samples.size() % input->bytes != 0) {
    std::fprintf(stderr, "error: '%s' holds %zu bytes, not a positive multiple "
                 "of the input size %zu\n", input_path, samples.size(),
                 input->bytes);
    return 1;
  }
  const size_t num_samples = samples.size() / input->bytes;

  // One pass per subnetwork; a plain model gets one pass with no index.
  const size_t passes = subnetwork != nullptr ? subnetworks.size() : 1;
  for (size_t p = 0; p < passes; ++p) {
    std::string out_path = output_prefix;
    if (subnetwork != nullptr) {
      out_path += "_k" + std::to_string(subnetworks[p]);
    }
    out_path += ".bin";
    std::vector<int8_t> outputs;
    outputs.reserve(num_samples * output->bytes);
    for (size_t s = 0; s < num_samples; ++s) {
      // Both inputs are written before every Invoke: TFLite Micro's memory
      // planner may place intermediate tensors over input buffers.
      if (subnetwork != nullptr) subnetwork->data.i32[0] = subnetworks[p];
      std::memcpy(input->data.int8, samples.data() + s * input->bytes,
                  input->bytes);
      if (interpreter.Invoke() != kTfLiteOk) {
        std::fprintf(stderr, "error: Invoke failed on sample %zu%s%s\n", s,
                     subnetwork != nullptr ? " for subnetwork " : "",
                     subnetwork != nullptr
                         ? std::to_string(subnetworks[p]).c_str()
                         : "");
        return 1;
      }
      outputs.insert(outputs.end(), output->data.int8,
                     output->data.int8 + output->bytes);
    }
    if (!WriteFile(out_path, outputs)) return 1;
    std::printf("ran %zu samples%s%s: %zu output bytes each -> %s "
                "(arena used %zu bytes)\n",
                num_samples, subnetwork != nullptr ? ", subnetwork " : "",
                subnetwork != nullptr ? std::to_string(subnetworks[p]).c_str()
                                      : "",
                static_cast<size_t>(output->bytes), out_path.c_str(),
                interpreter.arena_used_bytes());
  }
  return 0;
}
