// Fuzz harness for the custom-options parser of the HADS operators (the
// Init of HADS_FULLY_CONNECTED / HADS_CONV_2D / HADS_DEPTHWISE_CONV_2D).
//
// Init parses an untrusted FlexBuffer straight from the model file; it must
// never read out of bounds, whatever the bytes. Two ways to run it:
//
// * libFuzzer (clang):  clang++ -fsanitize=fuzzer,address,undefined
//     -DHADS_LIBFUZZER ... options_fuzz.cc ../hads_ops.cc ../hads_kernels.cc
//     libtensorflow-microlite.a && ./a.out -max_total_time=60
// * without libFuzzer (g++), a seeded mutation loop for a bounded time:
//     options_fuzz SECONDS [SEED]   (run_fuzz.py builds and runs it)
//
// The operators' Init needs only TfLiteContext::AllocatePersistentBuffer,
// provided here by a bump allocator over a static arena.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

#include "flatbuffers/flexbuffers.h"
#include "tensorflow/lite/c/common.h"
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

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SECONDS [SEED]\n", argv[0]);
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
