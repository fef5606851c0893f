"""Keras model -> `.tflite` bytes (float32 or full-integer int8).

Route: the model is written as a TensorFlow SavedModel through
`keras.export.ExportArchive` with one endpoint of fixed input signature
(batch 1, the model's input shape), then converted with
`tf.lite.TFLiteConverter.from_saved_model`. Why not the shorter routes:
`from_keras_model` goes through Keras 2 code paths that Keras 3 models do
not fully support, and `from_concrete_functions` on a Keras 3 model keeps
the variables as resources (`READ_VARIABLE` ops), which the int8
calibrator cannot run. A SavedModel freezes the variables, the converter
folds BatchNormalization into the preceding convolution, and a fixed batch
of 1 is what microcontrollers need (static shapes).
"""

import tempfile

import numpy as np

DEFAULT_CALIBRATION_SAMPLES = 500


def input_shape(model):
    """The model's single input shape without the batch axis."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            f"Model '{model.name}' has no known inputs; build it with "
            "keras.Input(...) first.")
    if len(inputs) != 1:
        raise ValueError(
            f"Model '{model.name}' has {len(inputs)} inputs; the exporter "
            "supports models with one input.")
    shape = tuple(inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise ValueError(
            f"Model '{model.name}' has input shape {shape} with unknown "
            "dimensions; TFLite Micro needs static shapes. Give keras.Input a "
            "full shape.")
    return shape


def representative_array(data, shape, max_samples=DEFAULT_CALIBRATION_SAMPLES):
    """Check and normalize representative data to a float32 array.

    Args:
        data: a numpy array (or nested lists) of samples `[N, *shape]`, or
            an iterable of such batches, or of `(x, y)` pairs (a
            `tf.data.Dataset`, say).
        shape: the model's input shape without batch.
        max_samples: at most this many samples are kept.

    Raises:
        ValueError: when data is missing, empty or of the wrong shape.
    """
    if data is None:
        raise ValueError(
            "representative_data is required for int8 conversion: pass a few "
            "hundred input samples (numpy array [N, *input_shape]) so the "
            "converter can calibrate activation ranges.")
    if not isinstance(data, np.ndarray) and not hasattr(data, "shape"):
        batches = []
        count = 0
        for batch in data:
            if isinstance(batch, (tuple, list)) and len(batch) in (1, 2) \
                    and hasattr(batch[0], "shape"):
                batch = batch[0]
            batch = np.asarray(batch, dtype=np.float32)
            if batch.shape == tuple(shape):
                batch = batch[None]
            batches.append(batch)
            count += len(batch)
            if count >= max_samples:
                break
        if not batches:
            raise ValueError("representative_data is empty: it yielded no samples.")
        data = np.concatenate(batches, axis=0)
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == len(shape) + 1 and tuple(data.shape[1:]) == tuple(shape):
        pass
    else:
        raise ValueError(
            f"representative_data has shape {data.shape}; expected "
            f"[N, {', '.join(str(d) for d in shape)}] (samples of the model "
            f"input {tuple(shape)}).")
    if len(data) == 0:
        raise ValueError("representative_data is empty: it holds 0 samples.")
    if not np.all(np.isfinite(data)):
        raise ValueError("representative_data contains NaN or infinite values.")
    return data[:max_samples]


def keras_to_tflite(model, representative_data=None, int8=False, int8_io=True):
    """Convert a plain Keras model (batch 1) to `.tflite` bytes.

    Args:
        model: a built Keras model with one input.
        representative_data: samples for int8 calibration (see
            `representative_array`); required when `int8`.
        int8: full-integer quantization (int8 weights per channel for
            convolutions, int8 activations, int32 biases).
        int8_io: with `int8`, make the model's input and output int8 too
            (what microcontrollers want); False keeps float32 input/output
            with QUANTIZE/DEQUANTIZE at the ends.
    """
    import keras
    import tensorflow as tf

    shape = input_shape(model)
    samples = None
    if int8:
        samples = representative_array(representative_data, shape)
    with tempfile.TemporaryDirectory(prefix="hads_export_") as directory:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serve", lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec((1,) + shape, tf.float32)])
        archive.write_out(directory, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(directory)
        if int8:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: (
                [samples[i:i + 1]] for i in range(len(samples)))
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if int8_io:
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
        return bytes(converter.convert())


def tflite_subnetwork(model, k, representative_data=None, int8=False,
                      int8_io=True):
    """One subnetwork of a nested model as a standalone `.tflite` model.

    The subnetwork is physically sliced (`hads_keras.extract_subnetwork`:
    its weights only, its own BatchNormalization statistics) and converted
    with the stock TFLite converter, so it runs on the stock TFLite runtime.

    Args:
        model: a `NestedModel` (or a plain/HADS Keras model: only k=0).
        k: subnetwork index, 0 = full network.
        representative_data: calibration samples `[N, *input_shape]`,
            required for `int8`.
        int8: full-integer int8 model instead of float32.
        int8_io: with `int8`, int8 input and output tensors.

    Returns:
        The `.tflite` file's bytes.
    """
    from hads_keras.extract import extract_subnetwork

    sub = extract_subnetwork(model, k)
    return keras_to_tflite(sub, representative_data, int8=int8, int8_io=int8_io)
