// Integrity check of a nested HADS model: the CRC-32 its exporter stores.
//
// The exporter (hads_keras.export.metadata.add_crc) writes the metadata
// entry `hads_crc32`: 4 bytes, little-endian, the CRC-32 (IEEE 802.3, as
// zlib's crc32) of the whole .tflite file with those 4 bytes taken as zero
// (docs/nested_tflite_format.md). It covers the weights, the HADS tables,
// the quantization parameters and the shapes: a corrupted byte that the
// operators' checks cannot see (a weight, a multiplier still in range)
// makes the check fail instead of giving silently different outputs.
//
// It reads every byte of the model once, so it costs start-up time
// (measured in docs/nested_tflite_format.md); it is not run unless asked
// for (the Arduino library's hads::verifyModel / NestedModel::beginVerified).
#ifndef HADS_TFLM_OPS_HADS_INTEGRITY_H_
#define HADS_TFLM_OPS_HADS_INTEGRITY_H_

#include <cstddef>
#include <cstdint>

namespace hads {

// Name of the metadata entry.
constexpr char kCrcMetadataName[] = "hads_crc32";

enum class IntegrityStatus : int32_t {
  kOk = 0,           // the stored CRC matches the bytes
  kMismatch = 1,     // the model's bytes changed since the export
  kNoChecksum = 2,   // no `hads_crc32` entry (older export, other writer)
  kBadModel = 3,     // not a TFLite flatbuffer, or the entry is malformed
};

// Short English description, for messages.
const char* IntegrityStatusString(IntegrityStatus status);

// zlib-compatible running CRC-32: Crc32(b, n, Crc32(a, m)) is the CRC of a
// followed by b; Crc32(nullptr, 0) is 0.
uint32_t Crc32(const uint8_t* data, size_t size, uint32_t crc = 0);

// Checks the `hads_crc32` entry of the model in `model_data` (the whole
// .tflite file, `model_size` bytes). Verifies the flatbuffer first, so any
// bytes are safe to pass.
IntegrityStatus VerifyModelChecksum(const uint8_t* model_data,
                                    size_t model_size);

}  // namespace hads

#endif  // HADS_TFLM_OPS_HADS_INTEGRITY_H_
