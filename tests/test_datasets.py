"""The example data pipelines on tfds mock data: shapes, dtypes, few-shot, errors."""

import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("tensorflow_datasets")

from hads_keras import datasets  # noqa: E402


@pytest.mark.parametrize("name,split,shape,classes", [
    ("speech_commands", "validation", (49, 10, 1), 12),
    ("fashion_mnist", "test", (28, 28, 1), 10),
    ("cifar10", "train", (32, 32, 3), 10),
])
def test_fake_data_has_real_shapes(name, split, shape, classes):
    x, y = datasets.as_numpy(datasets.load(name, split, fake=True, fake_examples=8,
                                           augment=(split == "train")))
    assert x.shape == (8,) + shape and x.dtype == np.float32
    assert y.dtype == np.int32 and y.min() >= 0 and y.max() < classes
    assert datasets.info(name).input_shape == shape
    assert datasets.info(name).num_classes == classes


def test_image_scaling():
    x, _ = datasets.as_numpy(datasets.load("fashion_mnist", "test", fake=True, fake_examples=8))
    assert 0.0 <= x.min() and x.max() <= 1.0
    raw = tf.constant(np.full((32, 32, 3), 255, np.uint8))
    image, _ = datasets._image_map("cifar10", augment=False)(raw, tf.constant(3, tf.int64))
    expected = (1.0 - np.array(datasets.CIFAR10_MEAN)) / np.array(datasets.CIFAR10_STD)
    np.testing.assert_allclose(image.numpy()[0, 0], expected, rtol=1e-6)


def test_dnn_stride_gives_25_frames():
    assert datasets.info("speech_commands", window_stride_ms=40).input_shape == (25, 10, 1)
    x, _ = datasets.as_numpy(datasets.load("speech_commands", "test", fake=True,
                                           fake_examples=4, window_stride_ms=40))
    assert x.shape == (4, 25, 10, 1)


def test_time_shift_keeps_length_and_content():
    clip = tf.range(1, 16001, dtype=tf.float32)
    shifted = datasets._time_shift(clip, 1600).numpy()
    assert shifted.shape == (16000,)
    nonzero = shifted[shifted != 0]
    # A shifted copy: a contiguous run of the original samples.
    assert np.all(np.diff(nonzero) == 1) and len(nonzero) >= 16000 - 1600


def test_few_shot_keeps_first_n_per_class():
    labels = np.array([0, 1, 0, 2, 0, 1, 1, 2, 2, 0], np.int32)
    ds = tf.data.Dataset.from_tensor_slices((np.arange(10, dtype=np.float32), labels))
    x, y = datasets.as_numpy(datasets.few_shot(ds, 2, num_classes=3))
    assert x.tolist() == [0, 1, 2, 3, 5, 7]
    assert sorted(np.bincount(y).tolist()) == [2, 2, 2]
    with pytest.raises(ValueError, match="samples_per_class"):
        datasets.few_shot(ds, 0, num_classes=3)


def test_samples_per_class_on_fake_speech():
    _, y = datasets.as_numpy(datasets.load("speech_commands", "train", fake=True,
                                           fake_examples=60, samples_per_class=1))
    assert np.all(np.bincount(y, minlength=12) <= 1)


def test_bad_input():
    with pytest.raises(ValueError, match="valid data sets: speech_commands, fashion_mnist, cifar10"):
        datasets.load("mnist", "train", fake=True)
    with pytest.raises(ValueError, match="valid splits: train, test"):
        datasets.load("cifar10", "validation", fake=True)
    with pytest.raises(FileNotFoundError, match="data_dir '/no/such/dir' does not exist"):
        datasets.load("cifar10", "train", data_dir="/no/such/dir")


def test_unknown_share():
    # 10 keywords of 3000 clips, 400 silence, 50000 unknown: keep 3711 unknown.
    p = datasets.unknown_keep_probability([3000] * 10 + [400, 50000])
    assert p * 50000 == pytest.approx(0.1 / 0.9 * 30400)
    assert datasets.unknown_keep_probability([10] * 12) == 1.0
    counts = datasets.label_counts("speech_commands", "train", fake=True, fake_examples=60)
    assert counts.sum() == 60 and counts.shape == (12,)
    _, y = datasets.as_numpy(datasets.load("speech_commands", "train", fake=True,
                                           fake_examples=60, unknown_share=1e-6))
    assert counts[11] > 0 and not np.any(y == 11) and len(y) == 60 - counts[11]
    with pytest.raises(ValueError, match="share"):
        datasets.unknown_keep_probability(counts, share=1.0)
