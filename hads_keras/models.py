"""Model zoo: the architectures the HADS paper evaluates, built from HADS layers.

Keyword spotting (Google Speech Commands, 12 classes) uses the networks of
Zhang et al. 2017, "Hello Edge: Keyword Spotting on Microcontrollers"
(arXiv 1711.07128), as defined in ARM's reference code
(ARM-software/ML-KWS-for-MCU, `models.py` and `train_commands.txt`) and
re-implemented in Keras by the HADS/REDS authors (FraCorti/hads,
`utils/keyword_spotting_models.py`). Fashion-MNIST and CIFAR-10 use the
small DS-CNN of the HADS code (`utils/ds_convolution_vision_data.py`).

    model = hads_keras.models.get_model("ds_cnn", "s")   # 49x10x1 MFCC -> 12
    hads_keras.model_costs(model)   # {"macs": 2656768, "params": 24908}

Every model is a plain functional `keras.Model` of `hads_keras.layers`
(Dense, Conv2D, DepthwiseConv2D, BatchNormalization), so it trains with
`fit` and goes straight into `hads_keras.apply(model, plan)`. Layers have
readable names (`conv1`, `ds2_depthwise`, `ds2_pointwise`, `fc1`, ...);
they are the group names a plan uses.

Costs (`hads_keras.model_costs`; MACs of Dense/Conv2D/DepthwiseConv2D,
parameters including biases and the four per-channel numbers of each BN),
next to Hello Edge's Table 4, which gives *operations* (about 2 x MACs plus
bias additions; its DS-CNN figures also count BN/ReLU/pooling) and
*memory* (8-bit weights plus activations, so it is not a parameter count):

=========  ===========  ===========  ==============  =====================
model      MACs         params       Hello Edge ops  Hello Edge memory
=========  ===========  ===========  ==============  =====================
DNN S      79,200       79,644       158.8 K         80.0 KB
DNN L      494,424      495,744      990.2 K         496.6 KB
CNN S      2,498,304    69,982       5.0 M           79.0 KB
CNN L      12,636,672   477,262      25.3 M          497.8 KB
DS-CNN S   2,656,768    24,908       5.4 M           38.6 KB
DS-CNN L   28,327,812   422,844      56.9 M          497.6 KB
=========  ===========  ===========  ==============  =====================

2 x MACs + bias additions reproduces the DNN figures exactly (158,844 and
990,168) and the CNN ones to the digit shown; the DS-CNN ones are within
2 % (5.31 M and 56.66 M before the BN/ReLU/pooling operations). The memory
column is quoted for orientation only: it depends on Hello Edge's
activation buffers and is not re-derived here.
The table is checked by `tests/test_models.py` against layer-by-layer
arithmetic written independently of `hads_keras.costs`.

Differences from Hello Edge, on purpose:

* DNN: three hidden layers of 144 (S) / 436 (L) units, as in Hello Edge and
  the HADS code (the HADS paper's text says "2-layer"; its code and Hello
  Edge use three). Hello Edge feeds the DNN 25 x 10 MFCCs (40 ms windows
  with a *40 ms* stride, `train_commands.txt`), so `dnn` defaults to
  `input_shape=(25, 10, 1)`; the front end `hads_keras.audio` makes those
  with `window_stride_ms=40`. On 49 x 10 features the first layer grows
  (DNN S: 113,760 MACs, 114,204 parameters).
* No dropout layers (Hello Edge trains with dropout; add
  `keras.layers.Dropout` if wanted, HADS slices through it).
* The classifier ends in a softmax (`classifier_activation`, as in
  `keras.applications`); pass `classifier_activation=None` for logits.
* Pooling before the DS-CNN classifier is a GlobalAveragePooling2D, the
  same arithmetic as Hello Edge's AveragePooling over the whole map.
* Conv layers keep their biases although a BN follows (as the reference
  code does), so the parameter counts match it.
"""

import keras

from hads_keras import layers as hl

KWS_INPUT_SHAPE = (49, 10, 1)      # 1 s clip, 40 ms windows, 20 ms stride, 10 MFCC
DNN_INPUT_SHAPE = (25, 10, 1)      # Hello Edge DNN: 40 ms stride
KWS_NUM_CLASSES = 12               # 10 keywords + silence + unknown

# Hello Edge sizes (ARM train_commands.txt; HADS utils/keyword_spotting.py).
_DNN_UNITS = {"s": (144, 144, 144), "l": (436, 436, 436)}
# (filters, kernel, strides) of the two convolutions; then the linear
# (low-rank, no activation) layer and the fully connected layer.
_CNN = {
    "s": dict(conv=((28, (10, 4), (1, 1)), (30, (10, 4), (2, 1))), linear=16, fc=128),
    "l": dict(conv=((60, (10, 4), (1, 1)), (76, (10, 4), (2, 1))), linear=58, fc=128),
}
# First conv (filters, kernel, strides), then one (kernel, strides) per
# depthwise-separable block; every layer has `filters` channels.
_DS_CNN = {
    "s": dict(filters=64, conv=((10, 4), (2, 2)),
              blocks=(((3, 3), (1, 1)),) * 4),
    "l": dict(filters=276, conv=((10, 4), (2, 1)),
              blocks=(((3, 3), (2, 2)),) + (((3, 3), (1, 1)),) * 4),
}
# The HADS code's DS-CNN S for images: 3x3 stride-2 conv, 4 blocks, LeakyReLU.
_DS_CNN_VISION = {
    "s": dict(filters=64, conv=((3, 3), (2, 2)),
              blocks=(((3, 3), (1, 1)),) * 4),
}

_SIZES = {
    "dnn": tuple(_DNN_UNITS),
    "cnn": tuple(_CNN),
    "ds_cnn": tuple(_DS_CNN),
    "ds_cnn_vision": tuple(_DS_CNN_VISION),
}


def available_models():
    """Mapping model name -> valid sizes."""
    return dict(_SIZES)


def _check_size(name, size):
    if not isinstance(size, str) or size.lower() not in _SIZES[name]:
        raise ValueError(
            f"Unknown size {size!r} for model '{name}'; valid sizes: "
            f"{', '.join(_SIZES[name])}.")
    return size.lower()


def _check_shape(name, input_shape, rank=3):
    shape = tuple(input_shape)
    if len(shape) != rank or any(d is None or int(d) < 1 for d in shape):
        raise ValueError(
            f"Model '{name}': input_shape must be {rank} positive integers "
            f"(height, width, channels), got {input_shape!r}.")
    return tuple(int(d) for d in shape)


def _check_classes(name, num_classes):
    if int(num_classes) < 2:
        raise ValueError(f"Model '{name}': num_classes must be >= 2, got {num_classes}.")
    return int(num_classes)


def dnn(size="s", input_shape=DNN_INPUT_SHAPE, num_classes=KWS_NUM_CLASSES,
        classifier_activation="softmax"):
    """Hello Edge DNN: Flatten, three ReLU Dense layers, classifier.

    Args:
        size: "s" (3 x 144 units) or "l" (3 x 436 units).
        input_shape: (time, mfcc, 1); Hello Edge uses 25 x 10 (40 ms stride).
        num_classes: output classes.
        classifier_activation: activation of the last Dense (None: logits).
    """
    size = _check_size("dnn", size)
    input_shape = _check_shape("dnn", input_shape)
    num_classes = _check_classes("dnn", num_classes)
    inputs = keras.Input(input_shape, name="features")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i, units in enumerate(_DNN_UNITS[size], start=1):
        x = hl.Dense(units, activation="relu", name=f"fc{i}")(x)
    outputs = hl.Dense(num_classes, activation=classifier_activation,
                       name="classifier")(x)
    return keras.Model(inputs, outputs, name=f"dnn_{size}")


def cnn(size="s", input_shape=KWS_INPUT_SHAPE, num_classes=KWS_NUM_CLASSES,
        classifier_activation="softmax"):
    """Hello Edge CNN: two conv+BN+ReLU, a linear layer, an FC+BN+ReLU layer.

    Convolutions are 10x4 'valid' (time x frequency), the second with
    stride 2 in time; the linear layer has no activation (Hello Edge's
    low-rank bottleneck).

    Args:
        size: "s" (28, 30 filters; linear 16) or "l" (60, 76; linear 58).
        input_shape: (time, mfcc, 1), 49 x 10 x 1 in Hello Edge.
        num_classes: output classes.
        classifier_activation: activation of the last Dense (None: logits).
    """
    size = _check_size("cnn", size)
    input_shape = _check_shape("cnn", input_shape)
    num_classes = _check_classes("cnn", num_classes)
    spec = _CNN[size]
    inputs = keras.Input(input_shape, name="features")
    x = inputs
    for i, (filters, kernel, strides) in enumerate(spec["conv"], start=1):
        x = hl.Conv2D(filters, kernel, strides=strides, padding="valid",
                      name=f"conv{i}")(x)
        x = hl.BatchNormalization(name=f"conv{i}_bn")(x)
        x = keras.layers.ReLU(name=f"conv{i}_relu")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = hl.Dense(spec["linear"], name="linear")(x)
    x = hl.Dense(spec["fc"], name="fc1")(x)
    x = hl.BatchNormalization(name="fc1_bn")(x)
    x = keras.layers.ReLU(name="fc1_relu")(x)
    outputs = hl.Dense(num_classes, activation=classifier_activation,
                       name="classifier")(x)
    return keras.Model(inputs, outputs, name=f"cnn_{size}")


def _ds_cnn(name, spec, input_shape, num_classes, classifier_activation,
            activation):
    def act(x, label):
        if activation == "leaky_relu":
            return keras.layers.LeakyReLU(name=f"{label}_act")(x)
        return keras.layers.ReLU(name=f"{label}_act")(x)

    filters = spec["filters"]
    kernel, strides = spec["conv"]
    inputs = keras.Input(input_shape, name="features")
    x = hl.Conv2D(filters, kernel, strides=strides, padding="same", name="conv1")(inputs)
    x = hl.BatchNormalization(name="conv1_bn")(x)
    x = act(x, "conv1")
    for i, (kernel, strides) in enumerate(spec["blocks"], start=1):
        x = hl.DepthwiseConv2D(kernel, strides=strides, padding="same",
                               name=f"ds{i}_depthwise")(x)
        x = hl.BatchNormalization(name=f"ds{i}_depthwise_bn")(x)
        x = act(x, f"ds{i}_depthwise")
        x = hl.Conv2D(filters, 1, name=f"ds{i}_pointwise")(x)
        x = hl.BatchNormalization(name=f"ds{i}_pointwise_bn")(x)
        x = act(x, f"ds{i}_pointwise")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = hl.Dense(num_classes, activation=classifier_activation,
                       name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


def ds_cnn(size="s", input_shape=KWS_INPUT_SHAPE, num_classes=KWS_NUM_CLASSES,
           classifier_activation="softmax"):
    """Hello Edge DS-CNN: a conv, depthwise-separable blocks, average pool.

    Every conv/depthwise/pointwise layer is followed by BN and ReLU.

    Args:
        size: "s" (64 channels; 10x4 conv stride 2x2, 4 blocks of stride 1)
            or "l" (276 channels; 10x4 conv stride 2x1, 5 blocks, the first
            of stride 2).
        input_shape: (time, mfcc, 1), 49 x 10 x 1 in Hello Edge.
        num_classes: output classes.
        classifier_activation: activation of the last Dense (None: logits).
    """
    size = _check_size("ds_cnn", size)
    return _ds_cnn(f"ds_cnn_{size}", _DS_CNN[size],
                   _check_shape("ds_cnn", input_shape),
                   _check_classes("ds_cnn", num_classes),
                   classifier_activation, "relu")


def ds_cnn_vision(size="s", input_shape=(32, 32, 3), num_classes=10,
                  classifier_activation="softmax"):
    """The HADS paper's DS-CNN S for Fashion-MNIST (28x28x1) and CIFAR-10 (32x32x3).

    As in the HADS code: a 3x3 stride-2 conv with 64 filters, four 3x3
    depthwise-separable blocks of 64 channels, BN and LeakyReLU (Keras
    default slope 0.3) after every layer, global average pooling, a Dense
    classifier. On 32x32x3: 5,227,136 MACs, 23,946 parameters; on 28x28x1:
    3,776,384 MACs, 22,794 parameters.

    Args:
        size: "s" (the only size the paper uses on images).
        input_shape: image shape (height, width, channels).
        num_classes: output classes.
        classifier_activation: activation of the last Dense (None: logits).
    """
    size = _check_size("ds_cnn_vision", size)
    return _ds_cnn(f"ds_cnn_vision_{size}", _DS_CNN_VISION[size],
                   _check_shape("ds_cnn_vision", input_shape),
                   _check_classes("ds_cnn_vision", num_classes),
                   classifier_activation, "leaky_relu")


_BUILDERS = {"dnn": dnn, "cnn": cnn, "ds_cnn": ds_cnn, "ds_cnn_vision": ds_cnn_vision}


def default_input_shape(name):
    """The input shape `get_model(name)` uses when none is given."""
    _check_name(name)
    return {"dnn": DNN_INPUT_SHAPE, "cnn": KWS_INPUT_SHAPE,
            "ds_cnn": KWS_INPUT_SHAPE, "ds_cnn_vision": (32, 32, 3)}[name]


def _check_name(name):
    if name not in _BUILDERS:
        choices = ", ".join(f"{n} (sizes: {', '.join(s)})" for n, s in _SIZES.items())
        raise ValueError(f"Unknown model {name!r}; valid models: {choices}.")


def get_model(name, size="s", input_shape=None, num_classes=None,
              classifier_activation="softmax"):
    """Build a zoo model by name.

    Args:
        name: "dnn", "cnn", "ds_cnn" (Hello Edge keyword spotting) or
            "ds_cnn_vision" (the paper's image DS-CNN).
        size: "s" or "l" ("s" only for "ds_cnn_vision").
        input_shape: defaults to `default_input_shape(name)`.
        num_classes: defaults to 12 for keyword spotting, 10 for images.
        classifier_activation: "softmax" (default) or None for logits.

    Raises:
        ValueError: listing the valid names and sizes.
    """
    if not isinstance(name, str):
        raise TypeError(f"Model name must be a string, got {type(name).__name__}.")
    name = name.lower().replace("-", "_")
    _check_name(name)
    if input_shape is None:
        input_shape = default_input_shape(name)
    if num_classes is None:
        num_classes = 10 if name == "ds_cnn_vision" else KWS_NUM_CLASSES
    return _BUILDERS[name](size, input_shape=input_shape, num_classes=num_classes,
                           classifier_activation=classifier_activation)
