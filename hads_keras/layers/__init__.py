"""HADS layers: drop-in replacements of the Keras layers with a runtime width."""

from hads_keras.layers.batch_normalization import BatchNormalization
from hads_keras.layers.conv2d import Conv1D, Conv2D
from hads_keras.layers.dense import Dense
from hads_keras.layers.depthwise_conv2d import DepthwiseConv2D

__all__ = ["BatchNormalization", "Conv1D", "Conv2D", "Dense", "DepthwiseConv2D"]
