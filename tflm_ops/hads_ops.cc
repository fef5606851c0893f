// TFLite Micro glue of the HADS custom operators (see hads_ops.h).
//
// Structure as in TFLite Micro's own kernels (kernels/fully_connected.cc,
// conv.cc): Init parses the custom options into persistent memory, Prepare
// validates tensors against them and precomputes everything that does not
// depend on the subnetwork, Eval reads the `subnetwork` input, looks up the
// subnetwork's row of the tables and calls the portable kernel.
//
// Errors never abort: Init records the first problem of the custom options
// (it cannot return a status), Prepare reports it, and every other check
// returns kTfLiteError with a MicroPrintf message naming the operator.
#include "hads_ops.h"

#include <cstddef>
#include <cstdint>

#include "hads_flexbuffers.h"
#include "hads_kernels.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/micro_context.h"
#include "tensorflow/lite/micro/micro_log.h"

namespace hads {
namespace {

enum class OpKind : uint8_t { kFullyConnected, kConv2D, kDepthwiseConv2D };

// Inputs and output of every HADS operator (docs/nested_tflite_format.md).
constexpr int kInputTensor = 0;
constexpr int kWeightsTensor = 1;
constexpr int kBiasTensor = 2;  // optional (-1); kernels use the options' bias
constexpr int kSubnetworkTensor = 3;
constexpr int kNumInputs = 4;
constexpr int kOutputTensor = 0;

// Bounds of every option and tensor size that enters arithmetic: far above
// what a real model holds, and low enough that no int32 expression of the
// kernels can overflow (an accepted option never causes undefined behaviour).
constexpr int kMaxSubnetworks = 256;
constexpr int kMaxChannels = 1 << 16;      // widths, depth_multiplier
constexpr int kMaxInSpatial = 1 << 16;     // fully connected positions
constexpr int kMaxStride = 1 << 10;
constexpr int kMaxSpatialSize = 1 << 16;   // image height / width, kernel size
constexpr int kMaxTableEntries = kMaxSubnetworks * kMaxChannels;
// Largest |(x - input_zero_point) * w| of one int8 product: 255 * 128.
constexpr int64_t kMaxProduct = 255 * 128;
// Room left under INT32_MAX for adding the output zero point after the
// requantization.
constexpr int64_t kAccumulatorLimit = INT32_MAX - 256;

const char* OpName(OpKind kind) {
  switch (kind) {
    case OpKind::kFullyConnected:
      return kHadsFullyConnected;
    case OpKind::kConv2D:
      return kHadsConv2D;
    case OpKind::kDepthwiseConv2D:
      return kHadsDepthwiseConv2D;
  }
  return "HADS";
}

// Persistent per-operator data. Kept small: it is the operator's whole
// arena cost, since the tables themselves are read in place from the model
// (usually flash) when the FlexBuffer stores them as 4-byte aligned typed
// vectors of 4-byte ints, as the hads_keras exporter writes them
// (docs/nested_tflite_format.md), and only copied into persistent arena
// memory otherwise (older exports, other writers), with a note from Init.
struct OpData {
  // Eval's data. `tables` points at the five int32 tables (Init), its
  // sizes are checked and its full widths set in Prepare. `segments`: the
  // segment tables of an input concatenated from sliced groups (count 0
  // when the input is one prefix).
  SubnetworkTables tables;
  SegmentTables segments;
  union {
    FullyConnectedShape fc;
    ConvShape conv;
  } shape;
  int32_t input_offset;   // QuantizedParams minus the per-subnetwork rows
  int32_t output_offset;
  int32_t act_min;
  int32_t act_max;

  // Custom options, read by Init for Prepare.
  int32_t table_size[7];  // entries of the tables, in kTableKeys order
  int32_t activation;
  int32_t in_spatial;         // fully connected
  int32_t stride_width;       // conv / depthwise
  int32_t stride_height;
  int32_t depth_multiplier;   // depthwise
  uint8_t padding;
  OpKind kind;

  // Set by Init when the custom options are unusable; Prepare reports it.
  bool error_has_range;  // "is out of range": the accepted range follows
  int32_t error_lo;
  int32_t error_hi;
  const char* error;
  const char* error_key;

  // Conv 2D on cores with the DSP kernels: im2col scratch in the arena
  // (Conv2DInt8ScratchBytes; 0 and index -1 where none is needed).
  int scratch_index;
  int32_t scratch_bytes;
};

// The tables' keys in the custom options, and where each goes. The two
// segment tables are present only for an input concatenated from sliced
// groups, and then both.
enum TableIndex {
  kInChannels,
  kOutChannels,
  kMultiplier,
  kShift,
  kBias,
  kSegmentOffsets,
  kSegmentChannels
};
constexpr const char* kTableKeys[7] = {
    "in_channels",  "out_channels",       "output_multiplier",
    "output_shift", "bias",               "in_segment_offsets",
    "in_segment_channels"};

const int32_t** TablePointer(OpData* data, int index) {
  SubnetworkTables* tables = &data->tables;
  switch (index) {
    case kInChannels:
      return &tables->in_channels;
    case kOutChannels:
      return &tables->out_channels;
    case kMultiplier:
      return &tables->output_multiplier;
    case kShift:
      return &tables->output_shift;
    case kSegmentOffsets:
      return &data->segments.offset;
    case kSegmentChannels:
      return &data->segments.channels;
    default:
      return &tables->bias;
  }
}

// ---------------------------------------------------------------------------
// Custom options (FlexBuffer map).

void Fail(OpData* data, const char* key, const char* what) {
  if (data->error == nullptr) {  // keep the first problem
    data->error = what;
    data->error_key = key;
  }
}

void FailRange(OpData* data, const char* key, int64_t lo, int64_t hi) {
  if (data->error == nullptr) {
    Fail(data, key, "is out of range");
    data->error_has_range = true;
    data->error_lo = static_cast<int32_t>(lo);
    data->error_hi = static_cast<int32_t>(hi);
  }
}

// Reads integer `key` into `out`; a missing key gives `fallback` when
// `required` is false. Bools count as 0/1.
bool ReadInt(const flexbuffers::Map& map, const char* key, bool required,
             int32_t fallback, int64_t lo, int64_t hi, int32_t* out,
             OpData* data) {
  const flexbuffers::Reference ref = map[key];
  if (ref.IsNull()) {
    if (required) {
      Fail(data, key, "is missing");
      return false;
    }
    *out = fallback;
    return true;
  }
  int64_t value = 0;
  if (ref.IsBool()) {
    value = ref.AsBool() ? 1 : 0;
  } else if (ref.IsUInt()) {
    const uint64_t u = ref.AsUInt64();
    if (u > static_cast<uint64_t>(hi)) {
      FailRange(data, key, lo, hi);
      return false;
    }
    value = static_cast<int64_t>(u);
  } else if (ref.IsInt()) {
    value = ref.AsInt64();
  } else {
    Fail(data, key, "is not an integer");
    return false;
  }
  if (value < lo || value > hi) {
    FailRange(data, key, lo, hi);
    return false;
  }
  *out = static_cast<int32_t>(value);
  return true;
}

// Copies the elements of a (typed or untyped) FlexBuffer vector of
// integers into a persistent int32 array.
template <typename VectorT>
bool CopyInts(TfLiteContext* context, const VectorT& vec, const char* key,
              const int32_t** out, int32_t* out_size, OpData* data) {
  const size_t size = vec.size();
  auto* values = static_cast<int32_t*>(
      context->AllocatePersistentBuffer(context, size * sizeof(int32_t)));
  if (values == nullptr) {
    Fail(data, key, "does not fit in the arena");
    return false;
  }
  for (size_t i = 0; i < size; ++i) {
    const flexbuffers::Reference e = vec[i];
    int64_t v = 0;
    if (e.IsUInt()) {
      const uint64_t u = e.AsUInt64();
      if (u > static_cast<uint64_t>(INT32_MAX)) {
        Fail(data, key, "has an entry outside int32");
        return false;
      }
      v = static_cast<int64_t>(u);
    } else if (e.IsInt()) {
      v = e.AsInt64();
      if (v < INT32_MIN || v > INT32_MAX) {
        Fail(data, key, "has an entry outside int32");
        return false;
      }
    } else {
      Fail(data, key, "has a non-integer entry");
      return false;
    }
    values[i] = static_cast<int32_t>(v);
  }
  *out = values;
  *out_size = static_cast<int32_t>(size);
  return true;
}

// The element bytes and width of a typed vector (protected in FlexBuffers'
// classes, which is why this derives from it).
class TypedVectorBytes : public flexbuffers::TypedVector {
 public:
  explicit TypedVectorBytes(const flexbuffers::TypedVector& vec)
      : flexbuffers::TypedVector(vec) {}
  const uint8_t* bytes() const { return data_; }
  uint8_t width() const { return byte_width_; }
};

// Why a typed vector cannot be read in place as int32, or nullptr if it can.
const char* NotInPlaceReason(flexbuffers::TypedVector vec) {
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
  (void)vec;
  return "this target is big-endian (FlexBuffers are little-endian)";
#else
  const TypedVectorBytes view(vec);
  if (vec.ElementType() != flexbuffers::FBT_INT) {
    return "its elements are not signed ints";
  }
  if (view.width() != sizeof(int32_t)) return "its elements are not 4 bytes";
  if (reinterpret_cast<uintptr_t>(view.bytes()) % alignof(int32_t) != 0) {
    return "it is not 4-byte aligned in the model";
  }
  return nullptr;
#endif
}

bool ReadIntVector(TfLiteContext* context, const flexbuffers::Map& map,
                   int index, OpData* data) {
  const char* key = kTableKeys[index];
  const int32_t** out = TablePointer(data, index);
  int32_t* out_size = &data->table_size[index];
  const flexbuffers::Reference ref = map[key];
  if (ref.IsNull()) {
    Fail(data, key, "is missing");
    return false;
  }
  if (!ref.IsTypedVector() && !(ref.IsVector() && !ref.IsMap())) {
    Fail(data, key, "is not a vector of integers");
    return false;
  }
  const size_t size =
      ref.IsTypedVector() ? ref.AsTypedVector().size() : ref.AsVector().size();
  if (size == 0 || size > static_cast<size_t>(kMaxTableEntries)) {
    Fail(data, key, "has no entries or far too many");
    return false;
  }
  if (ref.IsTypedVector()) {
    const flexbuffers::TypedVector vec = ref.AsTypedVector();
    const char* reason = NotInPlaceReason(vec);
    if (reason == nullptr) {
      // VerifyBuffer has checked that the elements lie inside the buffer.
      *out = reinterpret_cast<const int32_t*>(TypedVectorBytes(vec).bytes());
      *out_size = static_cast<int32_t>(size);
      return true;
    }
    MicroPrintf("%s: table '%s' is copied into the arena (%d bytes) because "
                "%s; export the model again with hads_keras to read it in "
                "place",
                OpName(data->kind), key, static_cast<int>(size * 4), reason);
    return CopyInts(context, vec, key, out, out_size, data);
  }
  MicroPrintf("%s: table '%s' is an untyped vector: copied into the arena "
              "(%d bytes); export the model again with hads_keras to read "
              "it in place",
              OpName(data->kind), key, static_cast<int>(size * 4));
  return CopyInts(context, ref.AsVector(), key, out, out_size, data);
}

void ParseOptions(TfLiteContext* context, const uint8_t* buffer,
                  size_t length, OpData* data) {
  if (buffer == nullptr || length == 0) {
    Fail(data, "custom_options", "are missing");
    return;
  }
  // The verifier bounds every offset, so a corrupt buffer cannot make the
  // reads below leave it.
  if (!flexbuffers::VerifyBuffer(buffer, length)) {
    Fail(data, "custom_options", "are not a valid FlexBuffer");
    return;
  }
  const flexbuffers::Reference root = flexbuffers::GetRoot(buffer, length);
  if (!root.IsMap()) {
    Fail(data, "custom_options", "are not a FlexBuffer map");
    return;
  }
  const flexbuffers::Map map = root.AsMap();
  int32_t version = 0;
  if (!ReadInt(map, "version", true, 0, 0, INT32_MAX, &version, data)) return;
  if (version != kHadsOptionsVersion) {
    Fail(data, "version", "is not supported (this build reads version 1)");
    return;
  }
  int32_t num_subnetworks = 0;
  bool ok =
      ReadInt(map, "num_subnetworks", true, 0, 1, kMaxSubnetworks,
              &num_subnetworks, data) &&
      ReadInt(map, "fused_activation_function", true, 0, 0, INT32_MAX,
              &data->activation, data) &&
      ReadIntVector(context, map, kInChannels, data) &&
      ReadIntVector(context, map, kOutChannels, data) &&
      ReadIntVector(context, map, kMultiplier, data) &&
      ReadIntVector(context, map, kShift, data) &&
      ReadIntVector(context, map, kBias, data);
  if (!ok) return;
  data->tables.num_subnetworks = num_subnetworks;
  const bool has_offsets = !map[kTableKeys[kSegmentOffsets]].IsNull();
  const bool has_channels = !map[kTableKeys[kSegmentChannels]].IsNull();
  if (has_offsets != has_channels) {
    Fail(data, has_offsets ? kTableKeys[kSegmentChannels]
                           : kTableKeys[kSegmentOffsets],
         "is missing (the segment tables come in pairs)");
    return;
  }
  if (has_offsets) {
    if (!ReadIntVector(context, map, kSegmentOffsets, data) ||
        !ReadIntVector(context, map, kSegmentChannels, data)) {
      return;
    }
    data->segments.count = data->table_size[kSegmentOffsets];
  }
  if (data->activation != kActNone && data->activation != kActRelu &&
      data->activation != kActReluN1To1 && data->activation != kActRelu6) {
    Fail(data, "fused_activation_function",
         "is not supported (NONE, RELU, RELU_N1_TO_1 or RELU6)");
    return;
  }
  if (data->kind == OpKind::kFullyConnected) {
    if (!ReadInt(map, "in_spatial", true, 1, 1, kMaxInSpatial,
                 &data->in_spatial, data)) {
      return;
    }
    // keep_num_dims only shapes the output tensor, which the converter
    // already did; read it to reject a malformed value.
    int32_t keep_num_dims = 0;
    ReadInt(map, "keep_num_dims", false, 0, 0, 1, &keep_num_dims, data);
    return;
  }
  int32_t dilation_w = 1;
  int32_t dilation_h = 1;
  int32_t padding = 0;
  ok = ReadInt(map, "padding", true, 0, kPaddingSame, kPaddingValid,
               &padding, data) &&
       ReadInt(map, "stride_w", true, 1, 1, kMaxStride, &data->stride_width,
               data) &&
       ReadInt(map, "stride_h", true, 1, 1, kMaxStride, &data->stride_height,
               data) &&
       ReadInt(map, "dilation_w_factor", false, 1, 1, INT32_MAX, &dilation_w,
               data) &&
       ReadInt(map, "dilation_h_factor", false, 1, 1, INT32_MAX, &dilation_h,
               data);
  if (!ok) return;
  data->padding = static_cast<uint8_t>(padding);
  if (dilation_w != 1 || dilation_h != 1) {
    Fail(data, "dilation_w_factor/dilation_h_factor",
         "must be 1 (dilated convolutions are not supported)");
    return;
  }
  if (data->kind == OpKind::kDepthwiseConv2D) {
    ReadInt(map, "depth_multiplier", true, 1, 1, kMaxChannels,
            &data->depth_multiplier, data);
  } else {
    data->depth_multiplier = 1;
  }
}

void* Init(TfLiteContext* context, const char* buffer, size_t length,
           OpKind kind) {
  TFLITE_DCHECK(context->AllocatePersistentBuffer != nullptr);
  auto* data = static_cast<OpData*>(
      context->AllocatePersistentBuffer(context, sizeof(OpData)));
  if (data == nullptr) return nullptr;  // Prepare reports it
  *data = OpData();
  data->kind = kind;
  ParseOptions(context, reinterpret_cast<const uint8_t*>(buffer), length,
               data);
  return data;
}

void* InitFullyConnected(TfLiteContext* context, const char* buffer,
                         size_t length) {
  return Init(context, buffer, length, OpKind::kFullyConnected);
}

void* InitConv2D(TfLiteContext* context, const char* buffer, size_t length) {
  return Init(context, buffer, length, OpKind::kConv2D);
}

void* InitDepthwiseConv2D(TfLiteContext* context, const char* buffer,
                          size_t length) {
  return Init(context, buffer, length, OpKind::kDepthwiseConv2D);
}

// ---------------------------------------------------------------------------
// Prepare.

// Temporary tensors of Prepare, released on every return path.
class TempTensors {
 public:
  explicit TempTensors(tflite::MicroContext* micro_context)
      : micro_context_(micro_context) {}
  ~TempTensors() {
    TfLiteTensor* all[] = {input, weights, bias, subnetwork, output};
    for (TfLiteTensor* t : all) {
      if (t != nullptr) micro_context_->DeallocateTempTfLiteTensor(t);
    }
  }
  TempTensors(const TempTensors&) = delete;
  TempTensors& operator=(const TempTensors&) = delete;

  TfLiteTensor* input = nullptr;
  TfLiteTensor* weights = nullptr;
  TfLiteTensor* bias = nullptr;
  TfLiteTensor* subnetwork = nullptr;
  TfLiteTensor* output = nullptr;

 private:
  tflite::MicroContext* micro_context_;
};

// Number of elements, or -1 on overflow / negative dimensions.
int64_t NumElements(const TfLiteTensor* t) {
  int64_t n = 1;
  for (int i = 0; i < t->dims->size; ++i) {
    const int d = t->dims->data[i];
    if (d < 0) return -1;
    n *= d;
    if (n > INT32_MAX) return -1;
  }
  return n;
}

bool IsAffine(const TfLiteTensor* t) {
  return t->quantization.type == kTfLiteAffineQuantization &&
         t->quantization.params != nullptr;
}

// Int8 weights must be symmetric: the kernels, like TFLite's per-channel
// reference kernels, apply no weight offset.
bool WeightsSymmetric(const TfLiteTensor* w) {
  if (w->params.zero_point != 0) return false;
  if (!IsAffine(w)) return true;
  const auto* q = static_cast<const TfLiteAffineQuantization*>(
      w->quantization.params);
  if (q->zero_point == nullptr) return true;
  for (int i = 0; i < q->zero_point->size; ++i) {
    if (q->zero_point->data[i] != 0) return false;
  }
  return true;
}

TfLiteStatus PrepareFullyConnected(const OpData& data,
                                   const TempTensors& t, const char* name,
                                   FullyConnectedShape* shape, int* full_in,
                                   int* full_out) {
  const TfLiteIntArray* w = t.weights->dims;
  if (w->size != 2 || w->data[0] < 1 || w->data[1] < 1) {
    MicroPrintf("%s: weights must be 2-D [out, in], got %d dimensions", name,
                w->size);
    return kTfLiteError;
  }
  const int out = w->data[0];
  const int features = w->data[1];
  if (features % data.in_spatial != 0) {
    MicroPrintf("%s: %d input features are not in_spatial=%d positions of "
                "equal width",
                name, features, static_cast<int>(data.in_spatial));
    return kTfLiteError;
  }
  const int64_t in_elems = NumElements(t.input);
  const int64_t out_elems = NumElements(t.output);
  if (in_elems < features || in_elems % features != 0) {
    MicroPrintf("%s: input of %d elements is not a whole number of rows of "
                "%d features",
                name, static_cast<int>(in_elems), features);
    return kTfLiteError;
  }
  const int batches = static_cast<int>(in_elems / features);
  if (out_elems != static_cast<int64_t>(batches) * out) {
    MicroPrintf("%s: output has %d elements, expected %d rows x %d", name,
                static_cast<int>(out_elems), batches, out);
    return kTfLiteError;
  }
  shape->batches = batches;
  shape->in_spatial = data.in_spatial;
  shape->in_channels = features / data.in_spatial;
  shape->out_channels = out;
  *full_in = shape->in_channels;
  *full_out = out;
  return kTfLiteOk;
}

TfLiteStatus PrepareConv(const OpData& data, const TempTensors& t,
                         const char* name, ConvShape* shape, int* full_in,
                         int* full_out) {
  const TfLiteIntArray* in = t.input->dims;
  const TfLiteIntArray* w = t.weights->dims;
  const TfLiteIntArray* out = t.output->dims;
  if (in->size != 4 || w->size != 4 || out->size != 4) {
    MicroPrintf("%s: input, filter and output must be 4-D (NHWC)", name);
    return kTfLiteError;
  }
  const bool depthwise = data.kind == OpKind::kDepthwiseConv2D;
  const int channels = in->data[3];
  const int out_channels = depthwise ? w->data[3] : w->data[0];
  if (depthwise) {
    if (w->data[0] != 1 ||
        static_cast<int64_t>(channels) * data.depth_multiplier !=
            out_channels) {
      MicroPrintf("%s: filter must be [1, kh, kw, %d * depth_multiplier=%d]",
                  name, channels, static_cast<int>(data.depth_multiplier));
      return kTfLiteError;
    }
  } else if (w->data[3] != channels) {
    MicroPrintf("%s: filter has %d input channels, input has %d", name,
                w->data[3], channels);
    return kTfLiteError;
  }
  for (int i = 1; i <= 2; ++i) {
    if (in->data[i] < 1 || in->data[i] > kMaxSpatialSize ||
        w->data[i] < 1 || w->data[i] > kMaxSpatialSize) {
      MicroPrintf("%s: input %s %d or filter %s %d outside 1..%d", name,
                  i == 1 ? "height" : "width", in->data[i],
                  i == 1 ? "height" : "width", w->data[i], kMaxSpatialSize);
      return kTfLiteError;
    }
  }
  const Status st = MakeConvShape(
      in->data[0], in->data[1], in->data[2], channels, w->data[1], w->data[2],
      out_channels, data.stride_height, data.stride_width,
      static_cast<Padding>(data.padding),
      depthwise ? data.depth_multiplier : 1, shape);
  if (st != kOk) {
    MicroPrintf("%s: bad geometry: %s", name, StatusString(st));
    return kTfLiteError;
  }
  if (out->data[0] != shape->batches || out->data[1] != shape->out_height ||
      out->data[2] != shape->out_width || out->data[3] != out_channels) {
    MicroPrintf("%s: output shape [%d, %d, %d, %d] does not match the "
                "options, expected [%d, %d, %d, %d]",
                name, out->data[0], out->data[1], out->data[2], out->data[3],
                shape->batches, shape->out_height, shape->out_width,
                out_channels);
    return kTfLiteError;
  }
  *full_in = channels;
  *full_out = out_channels;
  return kTfLiteOk;
}

// Rejects tables with which an int32 step of the kernels could overflow
// (undefined behaviour in C++): the accumulator is at most
// products * 255 * 128 + |bias| in magnitude, a positive shift multiplies it
// before the high multiply, and the output zero point is added after it.
// Real models stay far below these bounds; a corrupt table does not.
TfLiteStatus CheckArithmeticBounds(const SubnetworkTables& tables,
                                   int64_t products, const char* name) {
  const int64_t sum_bound = products * kMaxProduct;
  if (sum_bound > kAccumulatorLimit) {
    MicroPrintf("%s: %d products per output can overflow the int32 "
                "accumulator (at most %d)",
                name, static_cast<int>(products),
                static_cast<int>(kAccumulatorLimit / kMaxProduct));
    return kTfLiteError;
  }
  const int rows = tables.num_subnetworks * tables.full_out;
  for (int i = 0; i < rows; ++i) {
    const int k = i / tables.full_out;
    const int c = i % tables.full_out;
    const int64_t bias = tables.bias[i];
    const int64_t acc_bound = sum_bound + (bias < 0 ? -bias : bias);
    if (acc_bound > kAccumulatorLimit) {
      MicroPrintf("%s: 'bias' of subnetwork %d channel %d is %d; with %d "
                  "products per output |bias| must be at most %d",
                  name, k, c, static_cast<int>(bias),
                  static_cast<int>(products),
                  static_cast<int>(kAccumulatorLimit - sum_bound));
      return kTfLiteError;
    }
    const int32_t multiplier = tables.output_multiplier[i];
    if (multiplier != 0 && multiplier < (1 << 30)) {
      MicroPrintf("%s: 'output_multiplier' of subnetwork %d channel %d is %d, "
                  "not a quantized multiplier (0 or 2^30..2^31-1)",
                  name, k, c, static_cast<int>(multiplier));
      return kTfLiteError;
    }
    const int32_t shift = tables.output_shift[i];
    if (shift < -31 || shift > 30 ||
        (shift > 0 && (acc_bound << shift) > kAccumulatorLimit)) {
      MicroPrintf("%s: 'output_shift' of subnetwork %d channel %d is %d; "
                  "shifts are -31..30 and a left shift must keep the "
                  "accumulator (up to %d) within int32",
                  name, k, c, static_cast<int>(shift),
                  static_cast<int>(acc_bound));
      return kTfLiteError;
    }
  }
  return kTfLiteOk;
}

// Checks the segment tables of a concatenated input against validated
// subnetwork tables, naming the first bad entry.
TfLiteStatus PrepareSegments(const OpData& data, const char* name) {
  const SegmentTables& segments = data.segments;
  if (segments.count == 0) return kTfLiteOk;
  const SubnetworkTables& tables = data.tables;
  const int count = segments.count;
  if (count > tables.full_in ||
      data.table_size[kSegmentChannels] !=
          static_cast<int64_t>(tables.num_subnetworks) * count) {
    MicroPrintf("%s: 'in_segment_offsets' has %d entries (1..%d input "
                "channels) and 'in_segment_channels' must have "
                "num_subnetworks x that many; got %d",
                name, count, tables.full_in,
                static_cast<int>(data.table_size[kSegmentChannels]));
    return kTfLiteError;
  }
  for (int k = 0; k < tables.num_subnetworks; ++k) {
    int total = 0;
    const Status st =
        CheckInputSegments(SelectSegments(segments, k), tables.full_in, &total);
    if (st != kOk || total != tables.in_channels[k]) {
      MicroPrintf("%s: segments of subnetwork %d are not within %d input "
                  "channels (offsets from 0, increasing; active channels "
                  "0..segment width, summing to in_channels %d): %s",
                  name, k, tables.full_in,
                  static_cast<int>(tables.in_channels[k]),
                  st != kOk ? StatusString(st) : "wrong sum");
      return kTfLiteError;
    }
  }
  const Status st = ValidateSegmentTables(tables, segments);
  if (st != kOk) {
    MicroPrintf("%s: a segment is wider in a later subnetwork (segment "
                "widths must be non-increasing: the subnetworks are "
                "nested): %s",
                name, StatusString(st));
    return kTfLiteError;
  }
  return kTfLiteOk;
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  if (node->user_data == nullptr) {
    MicroPrintf("HADS operator: out of arena memory for its data");
    return kTfLiteError;
  }
  auto* data = static_cast<OpData*>(node->user_data);
  const char* name = OpName(data->kind);
  if (data->error != nullptr) {
    if (data->error_has_range) {
      MicroPrintf("%s: custom options: '%s' %s %d..%d (see "
                  "docs/nested_tflite_format.md)",
                  name, data->error_key, data->error,
                  static_cast<int>(data->error_lo),
                  static_cast<int>(data->error_hi));
    } else {
      MicroPrintf("%s: custom options: '%s' %s (see "
                  "docs/nested_tflite_format.md)",
                  name, data->error_key, data->error);
    }
    return kTfLiteError;
  }
  if (node->inputs->size != kNumInputs || node->outputs->size != 1) {
    MicroPrintf("%s: expected 4 inputs (input, weights, bias or -1, "
                "subnetwork) and 1 output, got %d and %d",
                name, node->inputs->size, node->outputs->size);
    return kTfLiteError;
  }

  tflite::MicroContext* micro_context = tflite::GetMicroContext(context);
  TempTensors t(micro_context);
  t.input = micro_context->AllocateTempInputTensor(node, kInputTensor);
  t.weights = micro_context->AllocateTempInputTensor(node, kWeightsTensor);
  t.bias = micro_context->AllocateTempInputTensor(node, kBiasTensor);
  t.subnetwork =
      micro_context->AllocateTempInputTensor(node, kSubnetworkTensor);
  t.output = micro_context->AllocateTempOutputTensor(node, kOutputTensor);
  if (t.input == nullptr || t.weights == nullptr || t.subnetwork == nullptr ||
      t.output == nullptr) {
    MicroPrintf("%s: input, weights, subnetwork and output are required",
                name);
    return kTfLiteError;
  }
  if (t.input->type != kTfLiteInt8 || t.weights->type != kTfLiteInt8 ||
      t.output->type != kTfLiteInt8) {
    MicroPrintf("%s: input, weights and output must be int8, got %s, %s, %s",
                name, TfLiteTypeGetName(t.input->type),
                TfLiteTypeGetName(t.weights->type),
                TfLiteTypeGetName(t.output->type));
    return kTfLiteError;
  }
  if (t.subnetwork->type != kTfLiteInt32 || NumElements(t.subnetwork) != 1) {
    MicroPrintf("%s: the subnetwork input must be one int32, got %s with %d "
                "elements",
                name, TfLiteTypeGetName(t.subnetwork->type),
                static_cast<int>(NumElements(t.subnetwork)));
    return kTfLiteError;
  }
  if (NumElements(t.input) < 1 || NumElements(t.weights) < 1 ||
      NumElements(t.output) < 1) {
    MicroPrintf("%s: input, weights and output need 1..%d elements "
                "(a dimension is negative, zero or too large)",
                name, static_cast<int>(INT32_MAX));
    return kTfLiteError;
  }
  if (!WeightsSymmetric(t.weights)) {
    MicroPrintf("%s: int8 weights must have zero point 0", name);
    return kTfLiteError;
  }
  if (!(t.output->params.scale > 0.0f) ||
      t.input->params.zero_point < -128 || t.input->params.zero_point > 127 ||
      t.output->params.zero_point < -128 ||
      t.output->params.zero_point > 127) {
    MicroPrintf("%s: input/output quantization is not int8 affine", name);
    return kTfLiteError;
  }

  int full_in = 0;
  int full_out = 0;
  if (data->kind == OpKind::kFullyConnected) {
    TF_LITE_ENSURE_OK(context, PrepareFullyConnected(*data, t, name,
                                                     &data->shape.fc,
                                                     &full_in, &full_out));
  } else {
    TF_LITE_ENSURE_OK(context, PrepareConv(*data, t, name, &data->shape.conv,
                                           &full_in, &full_out));
  }
  data->scratch_index = -1;
  data->scratch_bytes = 0;
  if (data->kind == OpKind::kConv2D) {
    data->scratch_bytes = Conv2DInt8ScratchBytes(data->shape.conv);
    if (data->scratch_bytes > 0) {
      TF_LITE_ENSURE_OK(context, context->RequestScratchBufferInArena(
                                     context, data->scratch_bytes,
                                     &data->scratch_index));
    }
  }
  if (t.bias != nullptr &&
      (t.bias->type != kTfLiteInt32 || NumElements(t.bias) != full_out)) {
    MicroPrintf("%s: bias must be int32 [%d]", name, full_out);
    return kTfLiteError;
  }

  // Tables: sizes first, so that validation reads only what exists.
  SubnetworkTables& tables = data->tables;
  const int s = tables.num_subnetworks;
  const int64_t rows = static_cast<int64_t>(s) * full_out;
  const int32_t* size = data->table_size;
  if (size[kInChannels] != s || size[kOutChannels] != s ||
      size[kMultiplier] != rows || size[kShift] != rows ||
      size[kBias] != rows) {
    MicroPrintf("%s: tables must have num_subnetworks=%d entries (in/out "
                "channels) and %d x %d (multiplier, shift, bias); got %d, %d, "
                "%d, %d, %d",
                name, s, s, full_out, static_cast<int>(size[kInChannels]),
                static_cast<int>(size[kOutChannels]),
                static_cast<int>(size[kMultiplier]),
                static_cast<int>(size[kShift]), static_cast<int>(size[kBias]));
    return kTfLiteError;
  }
  tables.full_in = full_in;
  tables.full_out = full_out;
  const int depth_multiplier =
      data->kind == OpKind::kDepthwiseConv2D ? data->depth_multiplier : 0;
  // Name the first bad entry; ValidateSubnetworkTables below stays the
  // authority (and covers the multipliers and shifts).
  for (int k = 0; k < s; ++k) {
    const int in = tables.in_channels[k];
    const int out = tables.out_channels[k];
    if (in < 1 || in > full_in || out < 1 || out > full_out) {
      MicroPrintf("%s: subnetwork %d has in_channels %d / out_channels %d, "
                  "outside 1..%d / 1..%d",
                  name, k, in, out, full_in, full_out);
      return kTfLiteError;
    }
    if (k > 0 && (in > tables.in_channels[k - 1] ||
                  out > tables.out_channels[k - 1])) {
      MicroPrintf("%s: subnetwork %d is wider than subnetwork %d (widths "
                  "must be non-increasing: the subnetworks are nested)",
                  name, k, k - 1);
      return kTfLiteError;
    }
    if (depth_multiplier > 0 && out != in * depth_multiplier) {
      MicroPrintf("%s: subnetwork %d has out_channels %d != in_channels %d "
                  "x depth_multiplier %d",
                  name, k, out, in, depth_multiplier);
      return kTfLiteError;
    }
  }
  const Status st = ValidateSubnetworkTables(tables, depth_multiplier);
  if (st != kOk) {
    MicroPrintf("%s: tables inconsistent with the tensors (full in %d, full "
                "out %d): %s",
                name, full_in, full_out, StatusString(st));
    return kTfLiteError;
  }
  TF_LITE_ENSURE_OK(context, PrepareSegments(*data, name));

  // Products summed into one output: the bound of the accumulator.
  int64_t products = 0;
  if (data->kind == OpKind::kFullyConnected) {
    products = static_cast<int64_t>(data->shape.fc.in_spatial) *
               data->shape.fc.in_channels;
  } else {
    products = static_cast<int64_t>(data->shape.conv.filter_height) *
               data->shape.conv.filter_width *
               (data->kind == OpKind::kConv2D ? full_in : 1);
  }
  TF_LITE_ENSURE_OK(context, CheckArithmeticBounds(tables, products, name));

  data->input_offset = -t.input->params.zero_point;
  data->output_offset = t.output->params.zero_point;
  const Status act = CalculateActivationRangeInt8(
      static_cast<Activation>(data->activation), t.output->params.scale,
      t.output->params.zero_point, &data->act_min, &data->act_max);
  if (act != kOk) {
    MicroPrintf("%s: activation range: %s", name, StatusString(act));
    return kTfLiteError;
  }
  return kTfLiteOk;
}

// ---------------------------------------------------------------------------
// Eval.

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  TFLITE_DCHECK(node->user_data != nullptr);
  const OpData& data = *static_cast<const OpData*>(node->user_data);
  const TfLiteEvalTensor* input =
      tflite::micro::GetEvalInput(context, node, kInputTensor);
  const TfLiteEvalTensor* weights =
      tflite::micro::GetEvalInput(context, node, kWeightsTensor);
  const TfLiteEvalTensor* subnetwork =
      tflite::micro::GetEvalInput(context, node, kSubnetworkTensor);
  TfLiteEvalTensor* output =
      tflite::micro::GetEvalOutput(context, node, kOutputTensor);

  // The switch: one integer read, a range check, pointer arithmetic.
  const int32_t k = tflite::micro::GetTensorData<int32_t>(subnetwork)[0];
  ActiveSubnetwork active;
  if (SelectSubnetwork(data.tables, k, &active) != kOk) {
    MicroPrintf("%s: subnetwork %d out of range 0..%d", OpName(data.kind),
                static_cast<int>(k),
                data.tables.num_subnetworks - 1);
    return kTfLiteError;
  }
  QuantizedParams params;
  params.input_offset = data.input_offset;
  params.output_offset = data.output_offset;
  params.act_min = data.act_min;
  params.act_max = data.act_max;
  params.output_multiplier = active.output_multiplier;
  params.output_shift = active.output_shift;
  params.bias = active.bias;

  const int8_t* x = tflite::micro::GetTensorData<int8_t>(input);
  const int8_t* w = tflite::micro::GetTensorData<int8_t>(weights);
  int8_t* y = tflite::micro::GetTensorData<int8_t>(output);
  void* scratch = data.scratch_index >= 0
                      ? context->GetScratchBuffer(context, data.scratch_index)
                      : nullptr;
  // A concatenated input: the active prefix of every segment.
  const bool segmented = data.segments.count > 0;
  const InputSegments segments = SelectSegments(data.segments, segmented ? k : 0);
  Status st = kOk;
  switch (data.kind) {
    case OpKind::kFullyConnected:
      st = segmented ? FullyConnectedInt8(data.shape.fc, params, segments,
                                          active.out_channels, x, w, y)
                     : FullyConnectedInt8(data.shape.fc, params,
                                          active.in_channels,
                                          active.out_channels, x, w, y);
      break;
    case OpKind::kConv2D:
      st = segmented ? Conv2DInt8(data.shape.conv, params, segments,
                                  active.out_channels, x, w, y, scratch,
                                  data.scratch_bytes)
                     : Conv2DInt8(data.shape.conv, params, active.in_channels,
                                  active.out_channels, x, w, y, scratch,
                                  data.scratch_bytes);
      break;
    case OpKind::kDepthwiseConv2D:
      st = segmented ? DepthwiseConv2DInt8(data.shape.conv, params, segments,
                                           x, w, y)
                     : DepthwiseConv2DInt8(data.shape.conv, params,
                                           active.in_channels, x, w, y);
      break;
  }
  if (st != kOk) {
    MicroPrintf("%s: %s", OpName(data.kind), StatusString(st));
    return kTfLiteError;
  }
  return kTfLiteOk;
}

}  // namespace

TFLMRegistration Register_HADS_FULLY_CONNECTED() {
  return tflite::micro::RegisterOp(InitFullyConnected, Prepare, Eval);
}

TFLMRegistration Register_HADS_CONV_2D() {
  return tflite::micro::RegisterOp(InitConv2D, Prepare, Eval);
}

TFLMRegistration Register_HADS_DEPTHWISE_CONV_2D() {
  return tflite::micro::RegisterOp(InitDepthwiseConv2D, Prepare, Eval);
}

}  // namespace hads
