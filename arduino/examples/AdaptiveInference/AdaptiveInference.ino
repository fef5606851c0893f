/* AdaptiveInference: one nested HADS model, every subnetwork in turn.

For each subnetwork (0 = full network, the last = smallest) the sketch
switches with select(k), runs one inference and prints the time of both
(micros()) with the subnetwork's MACs and the top class. The model is in
`hads_model.h`: in the library's example, the bundled example model (a
DS-CNN on load_digits); in a sketch folder written by

    python -m hads_keras.export.arduino sketch model_nested.tflite MySketch

the model you exported (see the library README).

Board: Arduino Nano 33 BLE (Sense) or any board the TensorFlow Lite Micro
library Chirale_TensorFLowLite supports. Serial Monitor at 115200 baud.
*/
#include <HADS.h>

// 1: check the model's bytes against its exported CRC-32 at start-up.
#ifndef HADS_VERIFY_MODEL
#define HADS_VERIFY_MODEL 0
#endif

#include "hads_model.h"

namespace {

HadsOpResolver resolver;  // sized for exactly this model's operators
alignas(16) uint8_t tensor_arena[kHadsArenaSize];
tflite::MicroInterpreter* interpreter = nullptr;
hads::NestedModel nested;
bool ready = false;

// Prints what failed; the library itself never stops the board.
void fail(const char* what, hads::Result result) {
  Serial.print(what);
  Serial.print(": ");
  Serial.println(hads::ResultString(result));
}

// Fills the data input with the exported example, or with the input's zero
// point (a "silent" input) when none was exported. Replace with sensor data.
void fillInput(TfLiteTensor* input) {
#if HADS_MODEL_HAS_SAMPLE
  memcpy(input->data.raw, g_hads_sample,
         sizeof(g_hads_sample) < input->bytes ? sizeof(g_hads_sample)
                                              : input->bytes);
#else
  if (input->type == kTfLiteInt8) {
    memset(input->data.int8, input->params.zero_point, input->bytes);
  } else {
    memset(input->data.raw, 0, input->bytes);
  }
#endif
}

void printLabel(int index) {
  if (index >= 0 && index < g_hads_num_labels) {
    Serial.print(g_hads_labels[index]);
  } else {
    Serial.print(index);
  }
}

}  // namespace

void setup() {
  Serial.begin(115200);
  while (!Serial) {
  }
  Serial.println("HADS AdaptiveInference");

  const tflite::Model* model = tflite::GetModel(g_hads_model);
  if (HadsModelAddOps(resolver) != kTfLiteOk) {
    Serial.println("registering the operators failed");
    return;
  }
  static tflite::MicroInterpreter static_interpreter(
      model, resolver, tensor_arena, kHadsArenaSize);
  interpreter = &static_interpreter;

#if HADS_VERIFY_MODEL
  // Checks the model's CRC-32 first (reads it once: ~14 instructions/byte).
  const hads::Result result = nested.beginVerified(
      g_hads_model, g_hads_model_len, *interpreter, g_hads_cost_table);
#else
  const hads::Result result = nested.begin(model, *interpreter,
                                           g_hads_cost_table);
#endif
  if (result != hads::Result::kOk) {
    fail("begin", result);
    return;
  }
  Serial.print("subnetworks: ");
  Serial.print(nested.count());
  Serial.print(", arena used: ");
  Serial.print(static_cast<unsigned long>(interpreter->arena_used_bytes()));
  Serial.print(" of ");
  Serial.println(kHadsArenaSize);
  ready = true;
}

void loop() {
  if (!ready) {
    delay(1000);
    return;
  }
  Serial.println("k\tMACs\tselect_us\tinvoke_us\ttop");
  for (int k = 0; k < nested.count(); ++k) {
    // Refill the input every time: TFLite Micro may reuse its memory during
    // an inference.
    fillInput(nested.input());
    const unsigned long t0 = micros();
    const hads::Result selected = nested.select(k);
    const unsigned long t1 = micros();
    const hads::Result invoked = nested.invoke();
    const unsigned long t2 = micros();
    if (selected != hads::Result::kOk || invoked != hads::Result::kOk) {
      fail("subnetwork", selected != hads::Result::kOk ? selected : invoked);
      continue;
    }
    Serial.print(k);
    Serial.print('\t');
    Serial.print(static_cast<unsigned long>(nested.macs(k)));
    Serial.print('\t');
    Serial.print(t1 - t0);
    Serial.print('\t');
    Serial.print(t2 - t1);
    Serial.print('\t');
    printLabel(nested.argmax());
    Serial.println();
  }
#if HADS_MODEL_HAS_SAMPLE
  Serial.print("expected: ");
  printLabel(g_hads_sample_label);
  Serial.println();
#endif
  delay(2000);
}
