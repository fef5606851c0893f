"""The paper's data sets as `tf.data` pipelines, real or fake.

* `speech_commands`: Google Speech Commands v0.02 through
  `tensorflow_datasets` ("speech_commands": 10 keywords + silence + unknown,
  1 s clips at 16 kHz), turned into Hello Edge MFCCs (`hads_keras.audio`):
  49 x 10 x 1 features (25 x 10 x 1 with `window_stride_ms=40`, the DNN's).
* `fashion_mnist`: 28 x 28 x 1 images scaled to [0, 1].
* `cifar10`: 32 x 32 x 3 images scaled to [0, 1] and standardized per
  channel (the HADS code's mean and standard deviation).

Training splits may be augmented like the HADS code (images: random
horizontal flip and a random 2-pixel shift; speech: Hello Edge's random
time shift of up to 100 ms), and the speech training split thinned to
Hello Edge's 10 % of `_unknown_` clips (`unknown_share`).

Each loader returns an unbatched `tf.data.Dataset` of `(features, label)`.
With `fake=True` no file is read or downloaded: `tfds.testing.mock_data`
generates random examples with the real data set's shapes and dtypes (a few
dozen per split), so every example and test runs offline.

    train = hads_keras.datasets.load("speech_commands", "train", fake=True)

`tensorflow-datasets` is needed (`pip install hads_keras[examples]`).
"""

import contextlib
import dataclasses
import os

import numpy as np
import tensorflow as tf

from hads_keras import audio


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a data set."""

    name: str
    tfds_name: str
    input_shape: tuple
    num_classes: int
    splits: tuple


_INFO = {
    "speech_commands": DatasetInfo("speech_commands", "speech_commands",
                                   (49, 10, 1), 12, ("train", "validation", "test")),
    "fashion_mnist": DatasetInfo("fashion_mnist", "fashion_mnist",
                                 (28, 28, 1), 10, ("train", "test")),
    "cifar10": DatasetInfo("cifar10", "cifar10", (32, 32, 3), 10, ("train", "test")),
}

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
MAX_TIME_SHIFT_MS = 100
# TFDS speech_commands labels: 10 keywords, then _silence_ (10), _unknown_ (11).
SPEECH_UNKNOWN_INDEX = 11
UNKNOWN_SHARE = 0.10
FAKE_EXAMPLES = 48


def info(name, window_stride_ms=audio.STRIDE_MS):
    """The `DatasetInfo` of `name` (input shape follows the MFCC stride)."""
    _check_name(name)
    result = _INFO[name]
    if name == "speech_commands":
        frames = audio.num_frames(stride_ms=window_stride_ms)
        result = dataclasses.replace(result, input_shape=(frames, audio.NUM_MFCC, 1))
    return result


def _check_name(name):
    if name not in _INFO:
        raise ValueError(f"Unknown data set {name!r}; valid data sets: {', '.join(_INFO)}.")


def _tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(
            "The example data sets need tensorflow-datasets: "
            "pip install 'hads_keras[examples]'.") from error
    return tfds


@contextlib.contextmanager
def _maybe_mock(fake, num_examples):
    if not fake:
        yield
        return
    tfds = _tfds()
    with tfds.testing.mock_data(num_examples=num_examples,
                                policy=tfds.testing.MockPolicy.USE_CODE):
        yield


def _raw(name, split, data_dir, fake, download, num_fake, decoders=None):
    tfds = _tfds()
    if split not in _INFO[name].splits:
        raise ValueError(
            f"Data set '{name}' has no split {split!r}; valid splits: "
            f"{', '.join(_INFO[name].splits)}.")
    if data_dir is not None and not fake and not os.path.isdir(data_dir):
        raise FileNotFoundError(
            f"data_dir '{data_dir}' does not exist. Create it (TFDS downloads "
            "into it), point it at an existing TFDS directory, or leave it "
            "unset to use ~/tensorflow_datasets.")
    with _maybe_mock(fake, num_fake):
        return tfds.load(_INFO[name].tfds_name, split=split, as_supervised=True,
                         data_dir=None if fake else data_dir,
                         download=download and not fake, shuffle_files=False,
                         decoders=decoders)


def _time_shift(clip, max_shift):
    # Hello Edge / TF speech_commands: shift by up to +-100 ms, zero-filled.
    shift = tf.random.uniform([], -max_shift, max_shift + 1, dtype=tf.int32)
    padded = tf.pad(clip, [[max_shift, max_shift]])
    return padded[max_shift - shift: max_shift - shift + audio.CLIP_SAMPLES]


def _speech_map(augment, window_stride_ms):
    max_shift = audio.SAMPLE_RATE * MAX_TIME_SHIFT_MS // 1000

    def fn(clip, label):
        clip = audio.pad_or_trim(audio.int16_to_float(clip), audio.CLIP_SAMPLES)
        if augment:
            clip = _time_shift(clip, max_shift)
        features = audio.mfcc(clip, stride_ms=window_stride_ms)[..., tf.newaxis]
        return features, tf.cast(label, tf.int32)
    return fn


def _shift_and_flip(image):
    image = tf.image.random_flip_left_right(image)
    shape = tf.shape(image)
    padded = tf.pad(image, [[2, 2], [2, 2], [0, 0]], mode="SYMMETRIC")
    return tf.image.random_crop(padded, shape)


def _image_map(name, augment):
    mean = tf.constant(CIFAR10_MEAN, tf.float32)
    std = tf.constant(CIFAR10_STD, tf.float32)

    def fn(image, label):
        image = tf.cast(image, tf.float32) / 255.0
        if name == "cifar10":
            image = (image - mean) / std
        if augment:
            image = _shift_and_flip(image)
        return image, tf.cast(label, tf.int32)
    return fn


def _unknown_filter(keep):
    def fn(clip, label):
        return tf.logical_or(tf.not_equal(label, SPEECH_UNKNOWN_INDEX),
                             tf.random.uniform([]) < keep)
    return fn


def few_shot(dataset, samples_per_class, num_classes):
    """Keep the first `samples_per_class` examples of every class (one pass).

    The paper compares bottom-up and top-down knapsack when importance and
    fine-tuning see only a few samples per class. Stops reading as soon as
    every class is full.
    """
    n = int(samples_per_class)
    if n < 1:
        raise ValueError(f"samples_per_class must be >= 1, got {samples_per_class}.")

    def step(counts, example):
        features, label = example
        keep = counts[label] < n
        counts = tf.tensor_scatter_nd_add(counts, [[label]], [tf.cast(keep, tf.int64)])
        return counts, (features, label, keep)

    counts = tf.zeros([num_classes], tf.int64)
    kept = dataset.scan(counts, step)
    kept = kept.filter(_is_kept).map(_drop_flag)
    return kept.take(n * num_classes)


def _is_kept(features, label, keep):
    return keep


def _drop_flag(features, label, keep):
    return features, label


def label_counts(name, split, *, data_dir=None, fake=False, download=True,
                 fake_examples=FAKE_EXAMPLES):
    """Examples per class of a split (reads labels only, no audio or pixels)."""
    _check_name(name)
    tfds = _tfds()
    feature = "audio" if name == "speech_commands" else "image"
    raw = _raw(name, split, data_dir, fake, download, fake_examples,
               decoders={feature: tfds.decode.SkipDecoding()})
    labels = np.fromiter((int(y) for y in raw.map(lambda x, y: y).as_numpy_iterator()),
                         dtype=np.int64)
    return np.bincount(labels, minlength=_INFO[name].num_classes)


def unknown_keep_probability(counts, unknown_index=SPEECH_UNKNOWN_INDEX,
                             share=UNKNOWN_SHARE):
    """Probability of keeping an `_unknown_` clip so that it makes up `share`.

    TFDS's training split files every non-keyword word under `_unknown_`
    (more than half of the clips); Hello Edge trains with 10 % unknown.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if not 0 < share < 1:
        raise ValueError(f"share of unknown clips must be in (0, 1), got {share}.")
    unknown = counts[unknown_index]
    others = counts.sum() - unknown
    if unknown == 0:
        return 1.0
    return float(min(1.0, share / (1 - share) * others / unknown))


def load(name, split, *, data_dir=None, fake=False, augment=False,
         samples_per_class=None, window_stride_ms=audio.STRIDE_MS,
         download=True, fake_examples=FAKE_EXAMPLES, unknown_share=None):
    """An unbatched `tf.data.Dataset` of `(features, int32 label)`.

    Args:
        name: "speech_commands", "fashion_mnist" or "cifar10".
        split: "train", "test" (and "validation" for speech commands).
        data_dir: TFDS data directory (must exist); default ~/tensorflow_datasets.
        fake: random data of the right shapes and dtypes, nothing read.
        augment: random time shift (speech) or flip + shift (images).
        samples_per_class: keep only the first n examples of each class.
        window_stride_ms: MFCC stride for speech (20; 40 for Hello Edge's DNN).
        download: let TFDS download and prepare the data set if missing.
        fake_examples: examples per split in fake mode.
        unknown_share: speech only: randomly drop `_unknown_` clips (anew
            every epoch) so that they make up about this share of the split,
            as Hello Edge's 10 % (costs one pass over the labels). None:
            keep all of TFDS's clips.

    Raises:
        ValueError: unknown data set or split (listing the valid ones).
        FileNotFoundError: `data_dir` does not exist.
    """
    _check_name(name)
    dataset = _raw(name, split, data_dir, fake, download, fake_examples)
    if name == "speech_commands" and unknown_share is not None:
        keep = unknown_keep_probability(
            label_counts(name, split, data_dir=data_dir, fake=fake,
                         download=download, fake_examples=fake_examples),
            share=unknown_share)
        dataset = dataset.filter(_unknown_filter(keep))
    if name == "speech_commands":
        dataset = dataset.map(_speech_map(augment, window_stride_ms),
                              num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(_image_map(name, augment),
                              num_parallel_calls=tf.data.AUTOTUNE)
    if samples_per_class:
        dataset = few_shot(dataset, samples_per_class, _INFO[name].num_classes)
    return dataset


def label_names(name, data_dir=None, fake=False):
    """Class names in label order (from the TFDS metadata)."""
    _check_name(name)
    tfds = _tfds()
    with _maybe_mock(fake, 1):
        builder = tfds.builder(_INFO[name].tfds_name,
                               data_dir=None if fake else data_dir)
        return list(builder.info.features["label"].names)


def as_numpy(dataset, limit=None):
    """`(x, y)` NumPy arrays of an unbatched dataset (first `limit` examples)."""
    if limit is not None:
        dataset = dataset.take(limit)
    xs, ys = [], []
    for x, y in dataset.as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    return np.stack(xs), np.asarray(ys)
