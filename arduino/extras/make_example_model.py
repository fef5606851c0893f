"""Writes the example model header (`src/hads_example_model.h`) that the
library's examples share (each example's `hads_model.h` includes it).

The examples need a nested model to build out of the box. This script makes
one the way `hads demo` does, on the same data (scikit-learn's
`load_digits`, 8x8 images, 10 classes, no download): a small DS-CNN of HADS
layers is trained, turned into a nested model of 4 subnetworks (widths for
about 100/75/50/25 % MACs), fine-tuned with all subnetworks at once,
exported to the nested int8 `.tflite` (hads_keras.export.tflite_nested) and
written with `hads_keras.export.arduino.model_header`, with one test image
as the sample input. About a minute on 2 CPU cores:

    python arduino/extras/make_example_model.py [nested.tflite]

(with a path, the nested model is also saved there).

This folder (`extras/`) is not compiled by the Arduino IDE.
"""

import pathlib
import sys

import keras
import numpy as np

import hads_keras as hads
from hads_keras import export
from hads_keras import layers as L
from hads_keras.export import arduino

WIDTHS = {"conv0": [16, 14, 11, 8], "pw1": [24, 20, 16, 11],
          "pw2": [24, 20, 16, 11]}
LABELS = [f"digit {d}" for d in range(10)]


def build():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 1), name="image")
    x = L.Conv2D(16, 3, padding="same", use_bias=False, name="conv0")(inputs)
    x = L.BatchNormalization(momentum=0.9, name="bn0")(x)
    x = keras.layers.ReLU(name="relu0")(x)
    for i in (1, 2):
        x = L.DepthwiseConv2D(3, strides=i, padding="same", use_bias=False,
                              name=f"dw{i}")(x)
        x = L.BatchNormalization(momentum=0.9, name=f"dw{i}_bn")(x)
        x = keras.layers.ReLU(name=f"dw{i}_relu")(x)
        x = L.Conv2D(24, 1, use_bias=False, name=f"pw{i}")(x)
        x = L.BatchNormalization(momentum=0.9, name=f"pw{i}_bn")(x)
        x = keras.layers.ReLU(name=f"pw{i}_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name="ds_cnn")


def main():
    from sklearn.datasets import load_digits
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]
    y = data.target.astype(np.int32)
    x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model = build()
    model.compile(keras.optimizers.Adam(0.01), loss, metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=15, batch_size=128, verbose=0)
    nested = hads.apply(model, hads.Plan(WIDTHS))
    nested.compile(keras.optimizers.Adam(0.005), loss, metrics=["accuracy"])
    nested.fit(x_train, y_train, epochs=10, batch_size=128, verbose=0)
    for k in range(len(WIDTHS["conv0"])):
        with nested.subnetwork(k):
            acc = np.mean(nested.predict(x_test, verbose=0).argmax(-1) == y_test)
        print(f"subnetwork {k}: float test accuracy {acc:.3f}")

    tflite = export.tflite_nested(nested, None, x_train[:200], labels=LABELS)
    if len(sys.argv) > 1:
        pathlib.Path(sys.argv[1]).write_bytes(tflite)
        np.save(pathlib.Path(sys.argv[1]).with_suffix(".x_test.npy"), x_test)
        np.save(pathlib.Path(sys.argv[1]).with_suffix(".y_test.npy"), y_test)
    description = (
        "Bundled so the examples build out of the box: a DS-CNN trained on\n"
        "scikit-learn's load_digits (8x8 images, 10 classes), nested into 4\n"
        "subnetworks, written by arduino/extras/make_example_model.py. For\n"
        "yours: python -m hads_keras.export.arduino sketch MODEL DIR")
    header = arduino.model_header(tflite, sample=x_test[0], sample_label=int(y_test[0]),
                                  description=description)
    path = arduino.LIBRARY_DIR / "src" / arduino.EXAMPLE_MODEL_HEADER
    path.write_text(header)
    print(f"wrote {path} ({len(tflite)} bytes of model)")


if __name__ == "__main__":
    main()
