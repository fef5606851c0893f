"""The README's quickstart runs as written (on scikit-learn's digits)."""

import os
import pathlib
import re

import keras
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _quickstart_code():
    text = README.read_text()
    section = text[text.index("## Quickstart"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_quickstart_runs(tmp_path):
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int32")

    def build_or_load_a_keras_model():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 1))
        h = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
        h = keras.layers.BatchNormalization(momentum=0.9)(h)
        h = keras.layers.ReLU()(h)
        h = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(h)
        h = keras.layers.BatchNormalization(momentum=0.9)(h)
        h = keras.layers.ReLU()(h)
        h = keras.layers.Conv2D(16, 1, use_bias=False)(h)
        h = keras.layers.BatchNormalization(momentum=0.9)(h)
        h = keras.layers.ReLU()(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))
        model.compile("adam", "sparse_categorical_crossentropy")
        return model

    namespace = {
        "build_or_load_a_keras_model": build_or_load_a_keras_model,
        "train_ds": tf.data.Dataset.from_tensor_slices((x[:1400], y[:1400])).batch(64),
        "val_ds": tf.data.Dataset.from_tensor_slices((x[1400:], y[1400:])).batch(64),
        "rep_ds": x[:200],
    }
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(_quickstart_code(), str(README), "exec"), namespace)
    finally:
        os.chdir(cwd)
    nested = namespace["nested"]
    assert nested.active_subnetwork == 2
    assert nested.num_subnetworks == 4
    assert (tmp_path / "model.tflite").stat().st_size > 0
    assert (tmp_path / "nested.keras").exists()
    assert list((tmp_path / "sketch_dir").glob("*.ino"))
    history = nested.history.history
    assert "sub3_accuracy" in history and "val_sub3_accuracy" in history
    assert np.isfinite(history["loss"]).all()
