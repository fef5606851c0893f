// C entry points over the portable HADS kernels, for the ctypes tests only.
// The kernels' own API is C++ (namespace hads, structs by reference); ctypes
// needs unmangled names, so each wrapper forwards one call unchanged.
#include "hads_kernels.h"

extern "C" {

int hads_fc_int8(const hads::FullyConnectedShape* shape,
                 const hads::QuantizedParams* params, int active_in,
                 int active_out, const int8_t* input, const int8_t* weights,
                 int8_t* output) {
  return hads::FullyConnectedInt8(*shape, *params, active_in, active_out,
                                  input, weights, output);
}

int hads_fc_int8_segments(const hads::FullyConnectedShape* shape,
                          const hads::QuantizedParams* params,
                          const hads::InputSegments* segments, int active_out,
                          const int8_t* input, const int8_t* weights,
                          int8_t* output) {
  return hads::FullyConnectedInt8(*shape, *params, *segments, active_out,
                                  input, weights, output);
}

int hads_conv_int8_segments(const hads::ConvShape* shape,
                            const hads::QuantizedParams* params,
                            const hads::InputSegments* segments,
                            int active_out, const int8_t* input,
                            const int8_t* filter, int8_t* output) {
  return hads::Conv2DInt8(*shape, *params, *segments, active_out, input,
                          filter, output, nullptr, 0);
}

int hads_dw_int8_segments(const hads::ConvShape* shape,
                          const hads::QuantizedParams* params,
                          const hads::InputSegments* segments,
                          const int8_t* input, const int8_t* filter,
                          int8_t* output) {
  return hads::DepthwiseConv2DInt8(*shape, *params, *segments, input, filter,
                                   output);
}

int hads_validate_segment_tables(const hads::SubnetworkTables* tables,
                                 const hads::SegmentTables* segments) {
  return hads::ValidateSegmentTables(*tables, *segments);
}

int hads_fc_float(const hads::FullyConnectedShape* shape,
                  const hads::FloatParams* params, int active_in,
                  int active_out, const float* input, const float* weights,
                  float* output) {
  return hads::FullyConnectedFloat(*shape, *params, active_in, active_out,
                                   input, weights, output);
}

int hads_conv_int8(const hads::ConvShape* shape,
                   const hads::QuantizedParams* params, int active_in,
                   int active_out, const int8_t* input, const int8_t* filter,
                   int8_t* output) {
  return hads::Conv2DInt8(*shape, *params, active_in, active_out, input,
                          filter, output);
}

int hads_conv_float(const hads::ConvShape* shape,
                    const hads::FloatParams* params, int active_in,
                    int active_out, const float* input, const float* filter,
                    float* output) {
  return hads::Conv2DFloat(*shape, *params, active_in, active_out, input,
                           filter, output);
}

int hads_dw_int8(const hads::ConvShape* shape,
                 const hads::QuantizedParams* params, int active_in,
                 const int8_t* input, const int8_t* filter, int8_t* output) {
  return hads::DepthwiseConv2DInt8(*shape, *params, active_in, input, filter,
                                   output);
}

int hads_dw_float(const hads::ConvShape* shape,
                  const hads::FloatParams* params, int active_in,
                  const float* input, const float* filter, float* output) {
  return hads::DepthwiseConv2DFloat(*shape, *params, active_in, input, filter,
                                    output);
}

int hads_make_conv_shape(int batches, int in_height, int in_width,
                         int in_channels, int filter_height, int filter_width,
                         int out_channels, int stride_height, int stride_width,
                         int padding, int depth_multiplier,
                         hads::ConvShape* shape) {
  return hads::MakeConvShape(batches, in_height, in_width, in_channels,
                             filter_height, filter_width, out_channels,
                             stride_height, stride_width,
                             static_cast<hads::Padding>(padding),
                             depth_multiplier, shape);
}

int32_t hads_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier,
                                              int shift) {
  return hads::MultiplyByQuantizedMultiplier(x, multiplier, shift);
}

int hads_activation_range_int8(int activation, float scale, int32_t zero_point,
                               int32_t* act_min, int32_t* act_max) {
  return hads::CalculateActivationRangeInt8(
      static_cast<hads::Activation>(activation), scale, zero_point, act_min,
      act_max);
}

int hads_activation_range_float(int activation, float* act_min,
                                float* act_max) {
  return hads::CalculateActivationRangeFloat(
      static_cast<hads::Activation>(activation), act_min, act_max);
}

int hads_validate_tables(const hads::SubnetworkTables* tables,
                         int depth_multiplier) {
  return hads::ValidateSubnetworkTables(*tables, depth_multiplier);
}

int hads_select_subnetwork(const hads::SubnetworkTables* tables,
                           int32_t subnetwork, hads::ActiveSubnetwork* active) {
  return hads::SelectSubnetwork(*tables, subnetwork, active);
}

const char* hads_status_string(int status) {
  return hads::StatusString(static_cast<hads::Status>(status));
}

}  // extern "C"
