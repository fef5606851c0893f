/* BudgetDriven: choose the subnetwork from a time budget that changes at
run time.

A simulated battery drains and recharges; the lower its level, the smaller
the time budget per inference. When the export carries each subnetwork's
latency (a model exported with a latency table in us or cycles), each round
selectForLatency() picks the largest subnetwork whose latency fits the
budget. Otherwise (selectForLatency() returns kNoLatency) the sketch uses
MACs: at start-up it measures the full network once and derives
microseconds per MAC, converts the budget into MACs and lets
selectForBudget() pick the largest subnetwork that fits; inference time is
close to linear in MACs (the HADS kernels only touch the active prefix of
every layer), though a depthwise MAC costs more than a pointwise one, which
a latency table measures. A button on pin 2 (to GND) halves the budget while
pressed, to try it by hand.

The model comes from hads_keras (`hads_model.h`, see the library README).
Serial Monitor at 115200 baud.
*/
#include <HADS.h>

#include "hads_model.h"

namespace {

constexpr int kButtonPin = 2;

HadsOpResolver resolver;
alignas(16) uint8_t tensor_arena[kHadsArenaSize];
tflite::MicroInterpreter* interpreter = nullptr;
hads::NestedModel nested;
bool ready = false;
float us_per_mac = 0.0f;     // measured on the full network
float full_us = 0.0f;        // one full-network inference
int battery = 100;           // simulated battery level in percent
int drain = -7;              // change per round

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

// Refills the input (TFLite Micro may reuse its memory during an inference)
// and times one inference of the active subnetwork.
unsigned long timedInvoke(hads::Result* result) {
  fillInput(nested.input());
  const unsigned long t0 = micros();
  *result = nested.invoke();
  return micros() - t0;
}

}  // namespace

void setup() {
  Serial.begin(115200);
  while (!Serial) {
  }
  pinMode(kButtonPin, INPUT_PULLUP);
  Serial.println("HADS BudgetDriven");

  const tflite::Model* model = tflite::GetModel(g_hads_model);
  if (HadsModelAddOps(resolver) != kTfLiteOk) {
    Serial.println("registering the operators failed");
    return;
  }
  static tflite::MicroInterpreter static_interpreter(
      model, resolver, tensor_arena, kHadsArenaSize);
  interpreter = &static_interpreter;
  hads::Result result = nested.begin(model, *interpreter, g_hads_cost_table);
  if (result != hads::Result::kOk) {
    Serial.print("begin: ");
    Serial.println(hads::ResultString(result));
    return;
  }
  // Calibrate: time the full network over a few runs (after a warm-up).
  constexpr int kRuns = 8;
  nested.select(0);
  timedInvoke(&result);
  unsigned long total_us = 0;
  for (int i = 0; i < kRuns && result == hads::Result::kOk; ++i) {
    total_us += timedInvoke(&result);
  }
  if (result != hads::Result::kOk || nested.macs(0) == 0) {
    Serial.println("calibration failed");
    return;
  }
  // At least 1 us in total, so that a model too fast for micros() still
  // gets a finite, proportional budget.
  full_us = static_cast<float>(total_us > 0 ? total_us : 1) / kRuns;
  us_per_mac = full_us / nested.macs(0);
  Serial.print("full network: ");
  Serial.print(full_us, 1);
  Serial.print(" us for ");
  Serial.print(static_cast<unsigned long>(nested.macs(0)));
  Serial.println(" MACs");
  Serial.println("battery%\tbudget_us\tk\tMACs\tinvoke_us\ttop");
  ready = true;
}

void loop() {
  if (!ready) {
    delay(1000);
    return;
  }
  // Budget: from 110 % of the full network at a full battery down to 15 %
  // when empty; halved while the button is pressed.
  float budget_us = full_us * (0.15f + 0.95f * battery / 100.0f);
  if (digitalRead(kButtonPin) == LOW) budget_us *= 0.5f;
  hads::Result result =
      nested.selectForLatency(static_cast<uint32_t>(budget_us));
  if (result == hads::Result::kNoLatency) {  // no latency table: use MACs
    result = nested.selectForBudget(static_cast<uint32_t>(budget_us / us_per_mac));
  }
  if (result == hads::Result::kNoFit) {
    result = nested.select(nested.count() - 1);  // best effort: smallest
  }
  unsigned long used_us = 0;
  if (result == hads::Result::kOk) used_us = timedInvoke(&result);
  if (result != hads::Result::kOk) {
    Serial.println(hads::ResultString(result));
  } else {
    Serial.print(battery);
    Serial.print('\t');
    Serial.print(budget_us, 1);
    Serial.print('\t');
    Serial.print(nested.current());
    Serial.print('\t');
    Serial.print(static_cast<unsigned long>(nested.macs(nested.current())));
    Serial.print('\t');
    Serial.print(used_us);
    Serial.print('\t');
    const int top = nested.argmax();
    if (top >= 0 && top < g_hads_num_labels) {
      Serial.println(g_hads_labels[top]);
    } else {
      Serial.println(top);
    }
  }

  battery += drain;
  if (battery <= 0 || battery >= 100) {
    drain = -drain;
    battery = battery <= 0 ? 0 : 100;
  }
  delay(500);
}
