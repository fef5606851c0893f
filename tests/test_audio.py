"""The Hello Edge MFCC front end against an independent NumPy/SciPy computation."""

import numpy as np
import pytest
import scipy.fft
import scipy.signal
import tensorflow as tf

from hads_keras import audio

SR = 16000


def mel(f):
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


def numpy_mfcc(x, window=640, hop=320, n_fft=1024, n_mel=40, lo=20.0, hi=4000.0,
               n_mfcc=10):
    """Textbook MFCC, written from the definitions (no tf.signal)."""
    frames = np.stack([x[i:i + window] for i in range(0, len(x) - window + 1, hop)])
    hann = scipy.signal.get_window("hann", window, fftbins=True)   # periodic
    magnitude = np.abs(np.fft.rfft(frames * hann, n=n_fft))
    # Triangular filters in the HTK mel domain; DC gets no weight.
    bins_mel = mel(np.linspace(0.0, SR / 2, n_fft // 2 + 1))
    edges = np.linspace(mel(lo), mel(hi), n_mel + 2)
    weights = np.zeros((n_fft // 2 + 1, n_mel))
    for m in range(n_mel):
        left, center, right = edges[m:m + 3]
        rising = (bins_mel - left) / (center - left)
        falling = (right - bins_mel) / (right - center)
        weights[:, m] = np.maximum(0.0, np.minimum(rising, falling))
    weights[0] = 0.0
    log_mel = np.log(np.maximum(magnitude @ weights, 1e-12))
    dct = scipy.fft.dct(log_mel, type=2, axis=-1) / np.sqrt(2.0 * n_mel)
    return log_mel, dct[:, :n_mfcc], edges


def sine(freq, amplitude=0.5, samples=SR, noise=0.0):
    t = np.arange(samples) / SR
    x = amplitude * np.sin(2 * np.pi * freq * t)
    if noise:
        # A faint noise floor keeps the far-away bands well above float32
        # round-off of the FFT, so the comparison is about the algorithm.
        x = x + noise * np.random.default_rng(0).standard_normal(samples)
    return x.astype(np.float32)


def test_shapes():
    assert audio.num_frames() == 49
    assert audio.num_frames(stride_ms=40) == 25
    assert audio.fft_length(640) == 1024
    x = np.zeros((3, SR), np.float32)
    assert audio.mfcc(x).shape == (3, 49, 10)
    assert audio.mfcc(x, stride_ms=40).shape == (3, 25, 10)
    assert audio.log_mel_spectrogram(x[0]).shape == (49, 40)
    clip = np.zeros(12000, np.int16)           # a short clip is padded to 1 s
    assert audio.clip_features(clip).shape == (49, 10, 1)
    assert audio.clip_features(np.zeros(20000, np.int16), stride_ms=40).shape == (25, 10, 1)


@pytest.mark.parametrize("freq", [440.0, 1000.0, 2500.0])
def test_sine_matches_independent_mfcc(freq):
    x = sine(freq, noise=1e-3)
    ref_log_mel, ref_mfcc, edges = numpy_mfcc(x.astype(np.float64))
    log_mel = audio.log_mel_spectrogram(x).numpy()
    got = audio.mfcc(x).numpy()
    np.testing.assert_allclose(log_mel, ref_log_mel, atol=2e-3)
    np.testing.assert_allclose(got, ref_mfcc, atol=2e-3)
    # The pattern of a pure tone: the energy sits in the mel filter whose
    # centre is closest to the tone, in every frame.
    centres_hz = 700.0 * np.expm1(edges[1:-1] / 1127.0)
    assert np.all(log_mel.argmax(axis=-1) == np.argmin(np.abs(centres_hz - freq)))


@pytest.mark.parametrize("freq", [1000.0, 2500.0])
def test_pure_tone_is_stationary(freq):
    # A whole number of periods per 20 ms hop: every frame sees the same
    # signal, so every frame has the same coefficients.
    got = audio.mfcc(sine(freq)).numpy()
    np.testing.assert_allclose(got, np.broadcast_to(got[0], got.shape), atol=1e-3)


def test_tones_differ_and_scale_moves_c0_only():
    low, high = audio.mfcc(sine(500.0)).numpy(), audio.mfcc(sine(3000.0)).numpy()
    assert np.abs(low[0, 1:] - high[0, 1:]).max() > 1.0
    # Doubling the amplitude adds log 2 to every mel band: only c0 moves,
    # by log(2) * sqrt(2 * 40): the unnormalized DCT-II of a constant c is
    # 2 * 40 * c in c0, and tf.signal scales by 1 / sqrt(2 * 40).
    louder = audio.mfcc(sine(500.0, amplitude=1.0)).numpy()
    np.testing.assert_allclose(louder[:, 0] - low[:, 0], np.log(2) * np.sqrt(80), atol=1e-3)
    np.testing.assert_allclose(louder[:, 1:], low[:, 1:], atol=1e-3)


def test_int16_scaling_and_padding():
    pcm = (sine(1000.0) * 32768).astype(np.int16)
    ref = audio.mfcc(pcm.astype(np.float32) / 32768.0).numpy()
    np.testing.assert_allclose(audio.clip_features(pcm).numpy()[..., 0], ref, atol=1e-5)
    padded = audio.pad_or_trim(tf.constant([1, 2, 3], tf.int16), 5).numpy()
    assert padded.tolist() == [1, 2, 3, 0, 0]


def test_runs_inside_tf_data():
    ds = tf.data.Dataset.from_tensor_slices(np.zeros((2, 8000), np.int16))
    ds = ds.map(audio.clip_features)
    assert [tuple(x.shape) for x in ds] == [(49, 10, 1), (49, 10, 1)]


@pytest.mark.parametrize("kwargs,match", [
    ({"num_mfcc": 41}, "num_mfcc"),
    ({"upper_hz": 9000.0}, "upper_hz"),
    ({"stride_ms": 0}, "stride_ms"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        audio.mfcc(np.zeros(SR, np.float32), **kwargs)


@pytest.mark.parametrize("signal,atol", [("noise", 1e-4), ("speechlike", 1e-4),
                                         ("tone", 0.05)])
def test_matches_hello_edge_kernels(signal, atol):
    """Hello Edge computed MFCCs with TensorFlow's AudioSpectrogram and Mfcc
    C++ kernels (still in tf.raw_ops): an independent implementation."""
    rng = np.random.default_rng(1)
    t = np.arange(SR) / SR
    x = {"noise": 0.1 * rng.standard_normal(SR),
         # a noisy harmonic sweep with an amplitude envelope
         "speechlike": (0.3 * np.sin(2 * np.pi * (150 + 400 * t) * t) * np.hanning(SR)
                        + 0.01 * rng.standard_normal(SR)),
         "tone": 0.5 * np.sin(2 * np.pi * 1000.0 * t)}[signal].astype(np.float32)
    spectrogram = tf.raw_ops.AudioSpectrogram(
        input=x[:, None], window_size=640, stride=320, magnitude_squared=True)
    reference = tf.raw_ops.Mfcc(
        spectrogram=spectrogram, sample_rate=SR, upper_frequency_limit=4000.0,
        lower_frequency_limit=20.0, filterbank_channel_count=40,
        dct_coefficient_count=10).numpy()[0]
    np.testing.assert_allclose(audio.mfcc(x).numpy(), reference, atol=atol)
