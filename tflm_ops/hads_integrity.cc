// Integrity check of a nested HADS model; see hads_integrity.h.
#include "hads_integrity.h"

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tensorflow/lite/schema/schema_generated.h"

namespace hads {
namespace {

// CRC-32 (reflected polynomial 0xEDB88320) four bits at a time: a 64-byte
// table instead of zlib's 1 KiB, two lookups per byte.
constexpr uint32_t kNibbleTable[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu,
    0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};

inline uint32_t Update(uint32_t crc, uint8_t byte) {
  crc ^= byte;
  crc = (crc >> 4) ^ kNibbleTable[crc & 15u];
  crc = (crc >> 4) ^ kNibbleTable[crc & 15u];
  return crc;
}

}  // namespace

const char* IntegrityStatusString(IntegrityStatus status) {
  switch (status) {
    case IntegrityStatus::kOk:
      return "ok";
    case IntegrityStatus::kMismatch:
      return "model CRC-32 mismatch: the model's bytes changed since the "
             "export (corrupt flash or a damaged copy); flash it again";
    case IntegrityStatus::kNoChecksum:
      return "the model has no hads_crc32 metadata: export it again with "
             "hads_keras to check it";
    case IntegrityStatus::kBadModel:
      return "not a valid TFLite model, or a malformed hads_crc32 entry";
  }
  return "unknown status";
}

uint32_t Crc32(const uint8_t* data, size_t size, uint32_t crc) {
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = Update(crc, data[i]);
  return ~crc;
}

IntegrityStatus VerifyModelChecksum(const uint8_t* model_data,
                                    size_t model_size) {
  if (model_data == nullptr || model_size < 8) {
    return IntegrityStatus::kBadModel;
  }
  flatbuffers::Verifier verifier(model_data, model_size);
  if (!tflite::VerifyModelBuffer(verifier)) return IntegrityStatus::kBadModel;
  const tflite::Model* model = tflite::GetModel(model_data);
  const auto* metadata = model->metadata();
  const auto* buffers = model->buffers();
  if (metadata == nullptr || buffers == nullptr) {
    return IntegrityStatus::kNoChecksum;
  }
  for (unsigned i = 0; i < metadata->size(); ++i) {
    const tflite::Metadata* entry = metadata->Get(i);
    const auto* name = entry->name();
    if (name == nullptr || name->size() != sizeof(kCrcMetadataName) - 1 ||
        std::memcmp(name->data(), kCrcMetadataName, name->size()) != 0) {
      continue;
    }
    if (entry->buffer() >= buffers->size()) return IntegrityStatus::kBadModel;
    const auto* data = buffers->Get(entry->buffer())->data();
    if (data == nullptr || data->size() != 4) return IntegrityStatus::kBadModel;
    // The verifier has checked that these 4 bytes lie inside the model.
    const size_t offset = static_cast<size_t>(data->data() - model_data);
    const uint8_t* stored = data->data();
    const uint32_t expected = static_cast<uint32_t>(stored[0]) |
                              (static_cast<uint32_t>(stored[1]) << 8) |
                              (static_cast<uint32_t>(stored[2]) << 16) |
                              (static_cast<uint32_t>(stored[3]) << 24);
    static const uint8_t kZeros[4] = {0, 0, 0, 0};
    uint32_t crc = Crc32(model_data, offset);
    crc = Crc32(kZeros, 4, crc);
    crc = Crc32(model_data + offset + 4, model_size - offset - 4, crc);
    return crc == expected ? IntegrityStatus::kOk : IntegrityStatus::kMismatch;
  }
  return IntegrityStatus::kNoChecksum;
}

}  // namespace hads
