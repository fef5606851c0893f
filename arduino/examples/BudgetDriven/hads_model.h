// hads_model.h: the model this sketch runs.
//
// Here: the example model bundled with the HADS library
// (src/hads_example_model.h, shared by every example, so it lives once).
// For your own model, write this file with
//   python -m hads_keras.export.arduino sketch MODEL.tflite SKETCH_DIR
// which replaces it by the model as a C array and its tables.
#include <hads_example_model.h>
