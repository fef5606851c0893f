// Fuzz harness for the HADS operators' handling of untrusted custom options
// (HADS_FULLY_CONNECTED / HADS_CONV_2D / HADS_DEPTHWISE_CONV_2D).
//
// The options come straight from the model file; whatever their bytes, the
// operators must return an error or compute, never read out of bounds or
// hit undefined behaviour. Two stages, each a seeded mutation loop for a
// bounded time (run_fuzz.py builds this with ASan + UBSan and runs both):
//
// * options_fuzz SECONDS [SEED]: Init alone on mutated FlexBuffers (bit
//   flips, random and boundary bytes, truncation, insertion, erasure), each
//   in an exactly sized heap block so that ASan sees any overrun. Init needs
//   only TfLiteContext::AllocatePersistentBuffer: a bump allocator here.
// * options_fuzz --models SECONDS SEED MODEL...: Init + Prepare + Eval in a
//   real tflite::MicroInterpreter. Each MODEL is a one-operator nested model
//   (run_fuzz.py writes them); the bytes of its custom options are mutated
//   in place (same length, so the model stays a valid flatbuffer), the
//   model is copied into an exactly sized heap block, AllocateTensors() runs
//   and, when it succeeds, Invoke() at subnetwork indices -1, 0, 1, S-1, S
//   and INT32_MAX with random input bytes. Outputs that differ from the
//   unmutated model's are counted: corruption that passes every check,
//   which only the model's CRC-32 (tflm_ops/hads_integrity.h) can catch.
//
// libFuzzer (clang) can drive the first stage: clang++ -fsanitize=fuzzer,
// address,undefined -DHADS_LIBFUZZER ... options_fuzz.cc ../hads_ops.cc
// ../hads_kernels.cc libtensorflow-microlite.a && ./a.out -max_total_time=60
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tflm_ops/hads_flexbuffers.h"
#include "tflm_ops/hads_ops.h"

namespace {

alignas(16) uint8_t g_arena[1 << 20];
size_t g_used = 0;

void* Allocate(TfLiteContext*, size_t bytes) {
  const size_t aligned = (bytes + 15) & ~static_cast<size_t>(15);
  if (aligned > sizeof(g_arena) - g_used) return nullptr;
  void* p = g_arena + g_used;
  g_used += aligned;
  return p;
}

void RunInits(const uint8_t* data, size_t size) {
  static const TFLMRegistration regs[] = {
      hads::Register_HADS_FULLY_CONNECTED(), hads::Register_HADS_CONV_2D(),
      hads::Register_HADS_DEPTHWISE_CONV_2D()};
  // Copy into an exactly sized heap block so that ASan sees any overrun.
  std::vector<char> copy(data, data + size);
  TfLiteContext context;
  std::memset(&context, 0, sizeof(context));
  context.AllocatePersistentBuffer = Allocate;
  for (const TFLMRegistration& reg : regs) {
    g_used = 0;
    reg.init(&context, size ? copy.data() : nullptr, size);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  RunInits(data, size);
  return 0;
}

#ifndef HADS_LIBFUZZER

namespace {

// Valid options of each operator kind, the seeds of the mutations.
std::vector<uint8_t> Seed(int kind) {
  flexbuffers::Builder fbb;
  fbb.Map([&]() {
    fbb.Int("version", 1);
    fbb.Int("num_subnetworks", 2);
    fbb.Vector("in_channels", [&]() { fbb.Int(4); fbb.Int(2); });
    const int out = kind == 2 ? 8 : 3;
    fbb.Vector("out_channels", [&]() {
      fbb.Int(out);
      fbb.Int(kind == 2 ? 4 : 2);
    });
    fbb.Int("fused_activation_function", 1);
    fbb.TypedVector("output_multiplier", [&]() {
      for (int i = 0; i < 2 * out; ++i) fbb.Int(1 << 30);
    });
    fbb.TypedVector("output_shift", [&]() {
      for (int i = 0; i < 2 * out; ++i) fbb.Int(-7);
    });
    fbb.TypedVector("bias", [&]() {
      for (int i = 0; i < 2 * out; ++i) fbb.Int(100 * i - 3000);
    });
    if (kind == 0) {
      fbb.Int("in_spatial", 2);
      fbb.Bool("keep_num_dims", false);
    } else {
      fbb.Int("padding", 0);
      fbb.Int("stride_w", 1);
      fbb.Int("stride_h", 2);
      fbb.Int("dilation_w_factor", 1);
      fbb.Int("dilation_h_factor", 1);
      if (kind == 2) fbb.Int("depth_multiplier", 2);
    }
  });
  fbb.Finish();
  return fbb.GetBuffer();
}

uint32_t g_state = 1;
uint32_t Next() {  // xorshift32
  g_state ^= g_state << 13;
  g_state ^= g_state >> 17;
  g_state ^= g_state << 5;
  return g_state;
}

std::vector<uint8_t> Mutate(std::vector<uint8_t> buf) {
  const int edits = 1 + static_cast<int>(Next() % 8);
  for (int e = 0; e < edits && !buf.empty(); ++e) {
    const size_t at = Next() % buf.size();
    switch (Next() % 6) {
      case 0:  // flip a bit
        buf[at] = static_cast<uint8_t>(buf[at] ^ (1u << (Next() % 8)));
        break;
      case 1:  // random byte
        buf[at] = static_cast<uint8_t>(Next());
        break;
      case 2:  // interesting byte
      {
        static const uint8_t kValues[] = {0, 1, 0x7f, 0x80, 0xff, 0x40, 0x20};
        buf[at] = kValues[Next() % sizeof(kValues)];
        break;
      }
      case 3:  // truncate
        buf.resize(at);
        break;
      case 4:  // insert
        buf.insert(buf.begin() + static_cast<std::ptrdiff_t>(at),
                   static_cast<uint8_t>(Next()));
        break;
      default:  // erase
        buf.erase(buf.begin() + static_cast<std::ptrdiff_t>(at));
        break;
    }
  }
  return buf;
}

}  // namespace

// ---------------------------------------------------------------------------
// Stage 2: Init + Prepare + Eval in the interpreter.

struct SeedModel {
  std::vector<uint8_t> bytes;
  size_t options_offset;  // of the HADS operator's custom options
  size_t options_size;
};

bool LoadSeedModel(const char* path, SeedModel* seed) {
  std::FILE* f = std::fopen(path, "rb");
  if (f == nullptr) return false;
  uint8_t chunk[4096];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f)) > 0) {
    seed->bytes.insert(seed->bytes.end(), chunk, chunk + n);
  }
  std::fclose(f);
  flatbuffers::Verifier verifier(seed->bytes.data(), seed->bytes.size());
  if (!tflite::VerifyModelBuffer(verifier)) return false;
  const tflite::Model* model = tflite::GetModel(seed->bytes.data());
  const auto* ops = model->subgraphs()->Get(0)->operators();
  for (unsigned i = 0; i < ops->size(); ++i) {
    const auto* options = ops->Get(i)->custom_options();
    if (options != nullptr && options->size() > 0) {
      seed->options_offset =
          static_cast<size_t>(options->data() - seed->bytes.data());
      seed->options_size = options->size();
      return true;
    }
  }
  return false;
}

// Same-length edits of the options bytes.
void MutateInPlace(uint8_t* data, size_t size) {
  const int edits = 1 + static_cast<int>(Next() % 4);
  for (int e = 0; e < edits; ++e) {
    const size_t at = Next() % size;
    switch (Next() % 3) {
      case 0:
        data[at] = static_cast<uint8_t>(data[at] ^ (1u << (Next() % 8)));
        break;
      case 1:
        data[at] = static_cast<uint8_t>(Next());
        break;
      default: {
        static const uint8_t kValues[] = {0, 1, 0x7f, 0x80, 0xff, 0x40, 0x20};
        data[at] = kValues[Next() % sizeof(kValues)];
        break;
      }
    }
  }
}

struct Outcome {
  bool allocated = false;
  int invoked_ok = 0;
  int invoke_errors = 0;
  std::vector<std::vector<int8_t>> outputs;  // per index, empty on error
};

const int32_t kIndices[] = {-1, 0, 1, 2, 3, INT32_MAX};

Outcome Run(const std::vector<uint8_t>& model_bytes,
            const std::vector<int8_t>& input) {
  Outcome out;
  // Exactly sized copy: ASan flags a read past the end of the model.
  std::vector<uint8_t> copy(model_bytes);
  static tflite::MicroMutableOpResolver<3> resolver;
  static bool registered = hads::AddHadsOps(resolver) == kTfLiteOk;
  if (!registered) std::abort();
  static std::vector<uint8_t> arena(256 * 1024);
  tflite::MicroInterpreter interpreter(tflite::GetModel(copy.data()),
                                       resolver, arena.data(), arena.size());
  if (interpreter.AllocateTensors() != kTfLiteOk) return out;
  out.allocated = true;
  TfLiteTensor* x = interpreter.input(0);
  TfLiteTensor* k = interpreter.input(1);
  for (int32_t index : kIndices) {
    std::memcpy(x->data.int8, input.data(),
                std::min(input.size(), static_cast<size_t>(x->bytes)));
    k->data.i32[0] = index;
    std::vector<int8_t> y;
    if (interpreter.Invoke() == kTfLiteOk) {
      ++out.invoked_ok;
      TfLiteTensor* o = interpreter.output(0);
      y.assign(o->data.int8, o->data.int8 + o->bytes);
    } else {
      ++out.invoke_errors;
    }
    out.outputs.push_back(y);
  }
  return out;
}

int RunModels(double seconds, const std::vector<SeedModel>& seeds) {
  long runs = 0, allocated = 0, invoked = 0, refused = 0, different = 0;
  const std::clock_t start = std::clock();
  while (static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC <
         seconds) {
    const SeedModel& seed = seeds[Next() % seeds.size()];
    std::vector<int8_t> input(4096);
    for (int8_t& v : input) v = static_cast<int8_t>(Next());
    std::vector<uint8_t> mutated(seed.bytes);
    MutateInPlace(mutated.data() + seed.options_offset, seed.options_size);
    const Outcome got = Run(mutated, input);
    ++runs;
    if (!got.allocated) continue;
    ++allocated;
    invoked += got.invoked_ok;
    refused += got.invoke_errors;
    const Outcome want = Run(seed.bytes, input);
    if (want.outputs != got.outputs) ++different;
  }
  std::printf("options_fuzz --models: %ld mutated models in %.0f s: %ld "
              "refused by Prepare, %ld accepted (%ld Invokes computed, %ld "
              "refused), %ld accepted with outputs differing from the "
              "unmutated model (only the CRC-32 catches those); no crash, no "
              "sanitizer report\n",
              runs, seconds, runs - allocated, allocated, invoked, refused,
              different);
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 5 && std::strcmp(argv[1], "--models") == 0) {
    g_state = static_cast<uint32_t>(std::atoi(argv[3])) | 1u;
    std::vector<SeedModel> seeds;
    for (int i = 4; i < argc; ++i) {
      SeedModel seed;
      if (!LoadSeedModel(argv[i], &seed)) {
        std::fprintf(stderr, "%s: not a model with custom options\n", argv[i]);
        return 2;
      }
      seeds.push_back(seed);
    }
    for (const SeedModel& seed : seeds) {  // the seeds themselves must run
      std::vector<int8_t> input(4096, 3);
      const Outcome o = Run(seed.bytes, input);
      if (!o.allocated || o.invoked_ok != 3) {
        std::fprintf(stderr, "a seed model does not run (%d Invokes ok)\n",
                     o.invoked_ok);
        return 2;
      }
    }
    return RunModels(std::atof(argv[2]), seeds);
  }
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SECONDS [SEED] | --models SECONDS SEED "
                 "MODEL...\n", argv[0]);
    return 2;
  }
  const double seconds = std::atof(argv[1]);
  g_state = argc > 2 ? static_cast<uint32_t>(std::atoi(argv[2])) | 1u : 1u;
  const std::vector<uint8_t> seeds[] = {Seed(0), Seed(1), Seed(2)};
  for (const auto& s : seeds) RunInits(s.data(), s.size());
  RunInits(nullptr, 0);
  const std::clock_t start = std::clock();
  long iterations = 0;
  long verified = 0;  // inputs that pass the verifier: parsed field by field
  while (static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC <
         seconds) {
    const std::vector<uint8_t> input = Mutate(seeds[Next() % 3]);
    RunInits(input.data(), input.size());
    verified += flexbuffers::VerifyBuffer(input.data(), input.size()) ? 1 : 0;
    ++iterations;
  }
  std::printf("options_fuzz: %ld inputs in %.0f s (%ld valid FlexBuffers "
              "parsed field by field), no crash\n",
              iterations, seconds, verified);
  return 0;
}

#endif  // HADS_LIBFUZZER
