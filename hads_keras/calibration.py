"""Recompute every subnetwork's BatchNormalization statistics from data.

After slicing, a subnetwork's BN layers hold the full network's moving
statistics, but its activations have other means and variances (fewer
channels feed every unit), so a freshly sliced subnetwork can be near
chance until fine-tuning repairs it. Universally slimmable networks (Yu &
Huang, 2019) compute the statistics of each width after training instead,
"post-statistics BN", from forward passes only. That is what
`calibrate_batch_norm` does:

    nested = hads.apply(model, plan)
    hads.calibrate_batch_norm(nested, x_train[:2000])   # or a tf.data set

For every subnetwork k and every `hads_keras.layers.BatchNormalization`
layer, in network order, row k of `moving_mean` / `moving_variance` (the
layer's active prefix of channels) becomes the exact mean and (biased, as
Keras's BN uses it) variance of that layer's input over all the given
samples, computed in inference mode with the already recalibrated
statistics of the layers before it (one pass over the data per BN layer
and subnetwork; calibration sets of a few thousand samples are the usual
size). So after the call each BN layer
normalizes with precisely the statistics of what it sees in inference: not
a momentum average, and independent of the batch size. Weights (kernels,
biases, gamma, beta) are not touched.
"""

import keras
import numpy as np
import tensorflow as tf

from hads_keras._runtime import static_subnetwork
from hads_keras.layers.batch_normalization import BatchNormalization


def calibrate_batch_norm(nested, data, batches=None, batch_size=256,
                         subnetworks=None):
    """Set every subnetwork's BN moving statistics to those of `data`.

    Args:
        nested: a `hads_keras.NestedModel` (from `hads_keras.apply`).
        data: input samples: a NumPy array / tensor `[N, ...]`, a tuple
            `(x, y)` of them (labels are ignored), a `tf.data.Dataset` of
            batches (`x` or `(x, y[, sample_weight])`), or any iterable of
            such batches.
        batches: use at most this many batches of `data` (default: all).
        batch_size: batch size for array input (the statistics do not
            depend on it; it only bounds memory).
        subnetworks: indices to calibrate (default: every subnetwork).

    Returns:
        `nested`, with the statistics replaced in place.

    Raises:
        TypeError / ValueError: for a model without a plan, empty data,
            `batches < 1` or an unknown subnetwork index.
    """
    plan = getattr(nested, "plan", None)
    network = getattr(nested, "network", None)
    if plan is None or network is None:
        raise TypeError(
            "calibrate_batch_norm needs a nested model (hads_keras.apply("
            f"model, plan)); got {type(nested).__name__}.")
    if batches is not None and int(batches) < 1:
        raise ValueError(
            f"calibrate_batch_norm: batches must be >= 1 (or None for all), "
            f"got {batches}.")
    if subnetworks is None:
        subnetworks = range(plan.num_subnetworks)
    subnetworks = [int(k) for k in subnetworks]
    for k in subnetworks:
        plan.check_subnetwork(k)
    inputs = _input_batches(data, batches, int(batch_size))
    bn_layers = [layer for layer in network.layers
                 if isinstance(layer, BatchNormalization)]
    if not bn_layers:
        return nested
    # One probe for all BN inputs; its traced step reads the statistics
    # variables when it runs, so pass j sees the rows written by passes < j.
    probe = keras.Model(network.inputs, [layer.input for layer in bn_layers],
                        name="calibration_probe")
    signature = [tf.TensorSpec([None, *inputs[0].shape[1:]], inputs[0].dtype)]
    for k in subnetworks:
        moments = _moments_function(probe, k, signature)
        for j, layer in enumerate(bn_layers):   # network order
            slicing = layer.hads_slicing
            if slicing is None or slicing.in_widths is None:
                # Unsliced channels: the layer reads row 0 in every subnetwork.
                if k != 0:
                    continue
                row = 0
            else:
                row = k
            mean, variance = _merged_moments(moments, j, inputs)
            _write_row(layer.moving_mean, row, mean)
            _write_row(layer.moving_variance, row, variance)
    return nested


def _moments_function(probe, subnetwork, signature):
    """Traced step: per BN input, (count, mean, sum of squared deviations)."""

    @tf.function(input_signature=signature)
    def moments(x):
        with static_subnetwork(subnetwork):   # truly narrow activations
            activations = probe(x, training=False)
        if not isinstance(activations, (list, tuple)):
            activations = [activations]
        out = []
        for a in activations:
            a = tf.cast(a, tf.float64)
            a = tf.reshape(a, [-1, tf.shape(a)[-1]])
            mean = tf.reduce_mean(a, axis=0)
            out.append((tf.cast(tf.shape(a)[0], tf.float64), mean,
                        tf.reduce_sum(tf.square(a - mean), axis=0)))
        return out

    return moments


def _merged_moments(moments, index, inputs):
    """Exact per-channel mean and biased variance of BN input `index`.

    Batches are merged with Chan et al.'s pairwise formula in float64 (no
    E[x^2] - E[x]^2 cancellation).
    """
    count, mean, m2 = 0.0, None, None
    for x in inputs:
        n_b, mean_b, m2_b = (v.numpy() for v in moments(x)[index])
        if mean is None:
            count, mean, m2 = n_b, mean_b, m2_b
            continue
        total = count + n_b
        delta = mean_b - mean
        mean = mean + delta * (n_b / total)
        m2 = m2 + m2_b + delta ** 2 * (count * n_b / total)
        count = total
    return mean, m2 / count


def _write_row(variable, row, values):
    """Row `row`, prefix `[:len(values)]` of a [subnetworks, C] variable."""
    current = keras.ops.convert_to_numpy(variable).copy()
    current[row, :len(values)] = values
    variable.assign(current)


def _input_batches(data, batches, batch_size):
    """The model inputs of `data` as a list of batches (reused per layer)."""
    if isinstance(data, tuple) and data and not isinstance(data[0], tuple):
        data = data[0]   # (x, y): labels are not needed
    if isinstance(data, (np.ndarray, tf.Tensor)):
        array = np.asarray(data)
        if array.ndim == 0 or len(array) == 0:
            raise ValueError("calibrate_batch_norm: the data holds no samples.")
        iterator = (array[i:i + batch_size]
                    for i in range(0, len(array), batch_size))
    else:
        try:
            iterator = iter(data)
        except TypeError:
            raise TypeError(
                "calibrate_batch_norm: data must be an array of inputs, a "
                "tuple (x, y), a tf.data.Dataset or an iterable of batches; "
                f"got {type(data).__name__}.") from None
    out = []
    for batch in iterator:
        if batches is not None and len(out) >= batches:
            break
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        if isinstance(batch, dict):
            raise ValueError(
                "calibrate_batch_norm: dict inputs are not supported; pass "
                "the model input array or (x, y) batches.")
        out.append(tf.convert_to_tensor(batch))
    if not out:
        raise ValueError(
            "calibrate_batch_norm: the data holds no batches (empty "
            "dataset?); give at least one batch of inputs.")
    return out
