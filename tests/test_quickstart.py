"""The README's quickstart runs exactly as printed (on scikit-learn's digits).

The model comes in uncompiled, as a user's own model often does: the
snippet itself must compile it before `fit`.
"""

import os
import pathlib
import re

import keras
import numpy as np
import pytest
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
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))

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
    assert "accuracy" in namespace["model"].history.history   # compiled as printed
    loaded = keras.saving.load_model(tmp_path / "nested.keras")
    assert loaded.plan == nested.plan and loaded.active_subnetwork == 2


def test_convert_keeps_compile_settings():
    import hads_keras as hads

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(5)(inputs)))
    assert not hads.convert(model).compiled      # nothing to keep
    model.compile(optimizer=keras.optimizers.Adam(0.0123),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    converted = hads.convert(model)
    assert converted.compiled and converted.optimizer is not model.optimizer
    assert float(converted.optimizer.learning_rate) == pytest.approx(0.0123)
    assert converted.get_compile_config() == model.get_compile_config()
    history = converted.fit(np.ones((8, 4), "float32"), np.zeros(8, "int32"),
                            epochs=1, verbose=0)
    assert "accuracy" in history.history
