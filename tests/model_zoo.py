"""Small models that users bring, written for these tests, and the whole
HADS pipeline run on each (shared by test_model_coverage.py and the native
kernel test).

Own definitions of the MLPerf Tiny reference architectures (same layers and
widths as the benchmark's keras_model.py files; inputs as in the benchmark
unless noted), plus toys for squeeze-and-excite and Conv1D:

* `resnet8`: image classification ResNet-8 (32x32x3; 16/32/64 filters,
  L2-regularized convolutions, 1x1 projection shortcuts in stacks 2 and 3).
* `ad_autoencoder`: anomaly detection FC autoencoder (640 inputs,
  4 x Dense(128)+BN+ReLU, Dense(8)+BN+ReLU, 4 x Dense(128)+BN+ReLU, Dense(640)).
* `kws_ds_cnn`: keyword spotting DS-CNN (49x10x1; Conv 64 (10,4)/2 + BN +
  ReLU + Dropout, four depthwise-separable blocks of 64, average pooling,
  Dense(12, softmax)).
* `se_toy`: a MobileNetV3-style block: expand, depthwise, squeeze-and-excite
  (GAP, 1x1 Conv, ReLU, 1x1 Conv, hard sigmoid, Multiply), project, residual Add.
* `kws_fc`: keyword spotting FC model ("fc4": 49x10 MFCCs flattened,
  3 x Dense(256, ReLU) + Dropout(0.2) + BatchNormalization, Dense(12,
  softmax)): a BatchNormalization after the activation, which the
  converter cannot fold into its Dense.
* `conv1d_kws`: a Conv1D keyword-spotting model with BatchNormalization right
  after the input (49 frames x 10 MFCCs).
* `inception_toy`: an Inception-style block: 1x1 branch, 1x1 -> 3x3 branch
  and a max-pooling branch, concatenated on the channels, then a 1x1 Conv.
* `densenet_toy`: a DenseNet-style dense block: three BN-ReLU-Conv1x1-BN-
  ReLU-Conv3x3 layers, each concatenated to its input (nested
  concatenations), then a DepthwiseConv2D (depth multiplier 2), BN and a
  Flatten into the classifier.
"""

import functools
import math

import keras
import numpy as np

import hads_keras as hads

TARGETS = [1.0, 0.75, 0.5, 0.25]


def resnet8(input_shape=(32, 32, 3), classes=10):
    reg = keras.regularizers.l2(1e-4)
    conv = lambda f, k, s, name: keras.layers.Conv2D(
        f, k, strides=s, padding="same", kernel_initializer="he_normal",
        kernel_regularizer=reg, name=name)
    inputs = keras.Input(input_shape)
    x = conv(16, 3, 1, "conv0")(inputs)
    x = keras.layers.BatchNormalization(name="bn0")(x)
    x = keras.layers.Activation("relu")(x)
    for stack, filters in enumerate((16, 32, 64)):
        stride = 1 if stack == 0 else 2
        y = conv(filters, 3, stride, f"s{stack}_conv1")(x)
        y = keras.layers.BatchNormalization(name=f"s{stack}_bn1")(y)
        y = keras.layers.Activation("relu")(y)
        y = conv(filters, 3, 1, f"s{stack}_conv2")(y)
        y = keras.layers.BatchNormalization(name=f"s{stack}_bn2")(y)
        if stack > 0:
            x = conv(filters, 1, stride, f"s{stack}_shortcut")(x)
        x = keras.layers.Add(name=f"s{stack}_add")([x, y])
        x = keras.layers.Activation("relu")(x)
    x = keras.layers.AveragePooling2D(pool_size=x.shape[1])(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="logits",
                                 kernel_initializer="he_normal")(x)
    return keras.Model(inputs, outputs, name="resnet8")


def ad_autoencoder(inputs_dim=640):
    inputs = keras.Input((inputs_dim,))
    x = inputs
    for i, units in enumerate([128] * 4 + [8] + [128] * 4):
        x = keras.layers.Dense(units, name=f"dense{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.Activation("relu")(x)
    outputs = keras.layers.Dense(inputs_dim, name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="ad_autoencoder")


def kws_ds_cnn(input_shape=(49, 10, 1), classes=12, filters=64):
    reg = keras.regularizers.l2(1e-4)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same",
                            kernel_regularizer=reg, name="conv0")(inputs)
    x = keras.layers.BatchNormalization(name="bn0")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.Dropout(0.2)(x)
    for b in range(4):
        x = keras.layers.DepthwiseConv2D(3, padding="same", depthwise_regularizer=reg,
                                         name=f"dw{b}")(x)
        x = keras.layers.BatchNormalization(name=f"dw{b}_bn")(x)
        x = keras.layers.Activation("relu")(x)
        x = keras.layers.Conv2D(filters, 1, padding="same", kernel_regularizer=reg,
                                name=f"pw{b}")(x)
        x = keras.layers.BatchNormalization(name=f"pw{b}_bn")(x)
        x = keras.layers.Activation("relu")(x)
    x = keras.layers.Dropout(0.4)(x)
    x = keras.layers.AveragePooling2D(pool_size=x.shape[1:3])(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="logits")(x)
    return keras.Model(inputs, outputs, name="kws_ds_cnn")


def kws_fc(input_shape=(49, 10), classes=12, units=256):
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(inputs)
    for i in range(3):
        x = keras.layers.Dense(units, activation="relu", name=f"fc{i}")(x)
        x = keras.layers.Dropout(0.2)(x)
        x = keras.layers.BatchNormalization(name=f"fc{i}_bn")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="logits")(x)
    return keras.Model(inputs, outputs, name="kws_fc")


def se_toy(input_shape=(12, 12, 3), classes=5):
    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation("hard_swish")(x)
    shortcut = x
    y = keras.layers.Conv2D(16, 1, use_bias=False, name="expand")(x)
    y = keras.layers.BatchNormalization(name="expand_bn")(y)
    y = keras.layers.ReLU()(y)
    y = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(y)
    y = keras.layers.BatchNormalization(name="dw_bn")(y)
    y = keras.layers.ReLU()(y)
    s = keras.layers.GlobalAveragePooling2D(keepdims=True)(y)
    s = keras.layers.Conv2D(4, 1, name="se_reduce")(s)
    s = keras.layers.ReLU()(s)
    s = keras.layers.Conv2D(16, 1, name="se_expand")(s)
    s = keras.layers.Activation("hard_sigmoid")(s)
    y = keras.layers.Multiply(name="se_mul")([y, s])
    y = keras.layers.Conv2D(8, 1, use_bias=False, name="project")(y)
    y = keras.layers.BatchNormalization(name="project_bn")(y)
    x = keras.layers.Add(name="add")([shortcut, y])
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="se_toy")


def conv1d_kws(input_shape=(49, 10), classes=12):
    inputs = keras.Input(input_shape)
    x = keras.layers.BatchNormalization(name="input_bn")(inputs)
    x = keras.layers.Conv1D(32, 5, strides=2, padding="same", name="conv1")(x)
    x = keras.layers.BatchNormalization(name="conv1_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv1D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.Conv1D(24, 3, padding="valid", name="conv3")(x)
    x = keras.layers.BatchNormalization(name="conv3_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="conv1d_kws")


def inception_toy(input_shape=(12, 12, 3), classes=5):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU()(x)
    a = keras.layers.Conv2D(6, 1, name="branch_a")(x)
    a = keras.layers.BatchNormalization(name="branch_a_bn")(a)
    a = keras.layers.ReLU()(a)
    b = keras.layers.Conv2D(4, 1, name="branch_b1")(x)
    b = keras.layers.ReLU()(b)
    b = keras.layers.Conv2D(10, 3, padding="same", name="branch_b2")(b)
    b = keras.layers.BatchNormalization(name="branch_b2_bn")(b)
    b = keras.layers.ReLU()(b)
    p = keras.layers.MaxPooling2D(3, strides=1, padding="same")(x)
    x = keras.layers.Concatenate(name="mixed")([a, b, p])
    x = keras.layers.Conv2D(12, 1, name="after")(x)
    x = keras.layers.BatchNormalization(name="after_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="inception_toy")


def densenet_toy(input_shape=(10, 10, 3), classes=4, growth=4):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, name="stem")(inputs)
    for i in range(3):
        y = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
        y = keras.layers.ReLU()(y)
        y = keras.layers.Conv2D(8, 1, use_bias=False, name=f"block{i}_conv1")(y)
        y = keras.layers.BatchNormalization(name=f"block{i}_conv1_bn")(y)
        y = keras.layers.ReLU()(y)
        y = keras.layers.Conv2D(growth, 3, padding="same", use_bias=False,
                                name=f"block{i}_conv2")(y)
        x = keras.layers.Concatenate(name=f"block{i}_concat")([x, y])
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = keras.layers.BatchNormalization(name="final_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.AveragePooling2D(5)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="densenet_toy")


BUILDERS = {
    "resnet8": resnet8,
    "ad_autoencoder": ad_autoencoder,
    "kws_ds_cnn": kws_ds_cnn,
    "se_toy": se_toy,
    "conv1d_kws": conv1d_kws,
    "kws_fc": kws_fc,
    "inception_toy": inception_toy,
    "densenet_toy": densenet_toy,
}


def data_for(model, n=64, seed=0):
    """Random inputs and targets of the model's shapes."""
    rng = np.random.default_rng(seed)
    shape = model.input_shape[1:]
    x = rng.normal(size=(n,) + shape).astype("float32")
    if model.name == "se_toy":
        x = rng.uniform(0, 255, size=(n,) + shape).astype("float32")
    out = model.output_shape[-1]
    if model.name == "ad_autoencoder":
        return x, x  # reconstruction
    return x, rng.integers(0, out, n)


def loss_for(model):
    if model.name == "ad_autoencoder":
        return "mse"
    probabilities = model.layers[-1].get_config().get("activation") == "softmax"
    return keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)


def independent_costs(model):
    """MACs and parameters of a plain Keras model, counted from its layers."""
    macs = 0
    for layer in model.layers:
        out = layer.output.shape if layer.weights else None
        if isinstance(layer, keras.layers.SeparableConv2D):
            c = layer.input.shape[-1] * layer.depth_multiplier
            macs += math.prod(out[1:-1]) * c * (math.prod(layer.kernel_size) + layer.filters)
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            macs += (math.prod(out[1:-1]) * math.prod(layer.kernel_size)
                     * layer.input.shape[-1] * layer.depth_multiplier)
        elif isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D)):
            macs += (math.prod(out[1:-1]) * math.prod(layer.kernel_size)
                     * layer.input.shape[-1] // layer.groups * layer.filters)
        elif isinstance(layer, keras.layers.Dense):
            macs += math.prod(out[1:-1]) * layer.input.shape[-1] * layer.units
    return {"macs": int(macs), "params": int(model.count_params())}


@functools.lru_cache(maxsize=None)
def pipeline(name, seed=0):
    """convert -> Taylor importance in fit -> solve -> apply -> multi-width fit.

    Returns (plain model, converted model, importance callback, plan, nested
    model, (x, y)).
    """
    keras.utils.set_random_seed(seed)
    plain = BUILDERS[name]()
    x, y = data_for(plain, n=32)
    model = hads.convert(plain)
    model.compile(keras.optimizers.Adam(1e-3), loss_for(plain))
    importance = hads.TaylorImportance()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[importance])
    plan = hads.solve(model, importance, mac_targets=TARGETS, time_limit=3.0)
    nested = hads.apply(model, plan)
    nested.compile(keras.optimizers.Adam(1e-3), loss_for(plain))
    nested.fit(x, y, epochs=1, batch_size=16, verbose=0)
    return plain, model, importance, plan, nested, (x, y)


@functools.lru_cache(maxsize=None)
def nested_export(name):
    """The nested int8 .tflite of `pipeline(name)` (calibrated on its inputs)."""
    from hads_keras import export
    nested, (x, _) = pipeline(name)[4], pipeline(name)[5]
    return export.tflite_nested(nested, None, x[:32])
