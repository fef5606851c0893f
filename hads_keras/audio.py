"""The Hello Edge speech front end: MFCC features with `tf.signal`.

Zhang et al. 2017 ("Hello Edge") feed their keyword-spotting networks
10 MFCCs of 40 ms windows every 20 ms of a 1 s, 16 kHz clip: 49 frames x 10
coefficients (the DNN uses a 40 ms stride: 25 x 10). Their code, TensorFlow's
speech_commands example of 2017, used the `AudioSpectrogram` and `Mfcc`
kernels; this module computes the same pipeline with `tf.signal`, so it runs
inside a `tf.data` map and on any backend device:

1. frames of `window_ms` every `stride_ms` (640 / 320 samples at 16 kHz),
   no padding: 1 + (16000 - 640) // 320 = 49 frames;
2. periodic Hann window, FFT of the next power of two (1024), magnitude;
3. 40 triangular mel filters (HTK mel scale) between 20 Hz and 4 kHz;
4. natural log, floored at 1e-12 like the `Mfcc` kernel;
5. DCT-II scaled by sqrt(2 / 40) (`tf.signal.mfccs_from_log_mel_spectrograms`),
   first `num_mfcc` coefficients.

The result agrees with TensorFlow's `AudioSpectrogram` + `Mfcc` kernels
(`tf.raw_ops`, the front end Hello Edge used) to within 1e-4 on broadband
audio; on pure tones, whose far-away mel bands hold almost no energy, the
two differ by up to a few hundredths (of coefficients spanning tens)
(`tests/test_audio.py`).

    features = hads_keras.audio.mfcc(waveform)        # [..., 16000] -> [..., 49, 10]
"""

import tensorflow as tf

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
WINDOW_MS = 40
STRIDE_MS = 20
NUM_MFCC = 10
NUM_MEL_BINS = 40
LOWER_HZ = 20.0
UPPER_HZ = 4000.0
LOG_FLOOR = 1e-12


def _samples(ms, sample_rate):
    return int(sample_rate * ms / 1000)


def fft_length(window_samples):
    """The FFT size: the next power of two of the window (1024 for 640)."""
    return 1 << (int(window_samples) - 1).bit_length()


def num_frames(samples=CLIP_SAMPLES, window_ms=WINDOW_MS, stride_ms=STRIDE_MS,
               sample_rate=SAMPLE_RATE):
    """Frames of a clip of `samples` samples (49 for Hello Edge, 25 at 40 ms stride)."""
    window = _samples(window_ms, sample_rate)
    stride = _samples(stride_ms, sample_rate)
    if samples < window:
        return 0
    return 1 + (samples - window) // stride


def pad_or_trim(audio, length=CLIP_SAMPLES):
    """Zero-pad at the end or cut a `[..., samples]` waveform to `length` samples."""
    audio = tf.convert_to_tensor(audio)
    audio = audio[..., :length]
    missing = length - tf.shape(audio)[-1]
    rank = len(audio.shape)
    paddings = [[0, 0]] * (rank - 1) + [[0, missing]]
    return tf.pad(audio, paddings)


def int16_to_float(audio):
    """int16 PCM -> float32 in [-1, 1) (what WAV decoding gives)."""
    return tf.cast(audio, tf.float32) / 32768.0


def _check(window_ms, stride_ms, num_mfcc, num_mel_bins, lower_hz, upper_hz,
           sample_rate):
    if window_ms <= 0 or stride_ms <= 0:
        raise ValueError(
            f"window_ms and stride_ms must be positive, got {window_ms}, {stride_ms}.")
    if not 1 <= num_mfcc <= num_mel_bins:
        raise ValueError(
            f"num_mfcc must be in [1, num_mel_bins={num_mel_bins}], got {num_mfcc}.")
    if not 0 <= lower_hz < upper_hz <= sample_rate / 2:
        raise ValueError(
            f"Need 0 <= lower_hz < upper_hz <= sample_rate / 2 = "
            f"{sample_rate / 2}; got lower_hz={lower_hz}, upper_hz={upper_hz}.")


def log_mel_spectrogram(audio, sample_rate=SAMPLE_RATE, window_ms=WINDOW_MS,
                        stride_ms=STRIDE_MS, num_mel_bins=NUM_MEL_BINS,
                        lower_hz=LOWER_HZ, upper_hz=UPPER_HZ):
    """Log mel energies of a float waveform: `[..., samples]` -> `[..., frames, mel]`."""
    _check(window_ms, stride_ms, 1, num_mel_bins, lower_hz, upper_hz, sample_rate)
    audio = tf.convert_to_tensor(audio, dtype=tf.float32)
    window = _samples(window_ms, sample_rate)
    stride = _samples(stride_ms, sample_rate)
    n_fft = fft_length(window)
    stft = tf.signal.stft(audio, frame_length=window, frame_step=stride,
                          fft_length=n_fft, window_fn=tf.signal.hann_window,
                          pad_end=False)
    magnitude = tf.abs(stft)
    weights = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=num_mel_bins, num_spectrogram_bins=n_fft // 2 + 1,
        sample_rate=sample_rate, lower_edge_hertz=lower_hz,
        upper_edge_hertz=upper_hz)
    mel = tf.tensordot(magnitude, weights, axes=1)
    return tf.math.log(tf.maximum(mel, LOG_FLOOR))


def mfcc(audio, sample_rate=SAMPLE_RATE, window_ms=WINDOW_MS, stride_ms=STRIDE_MS,
         num_mfcc=NUM_MFCC, num_mel_bins=NUM_MEL_BINS, lower_hz=LOWER_HZ,
         upper_hz=UPPER_HZ):
    """Hello Edge MFCCs of a float waveform: `[..., samples]` -> `[..., frames, num_mfcc]`.

    Args:
        audio: float waveform in [-1, 1] (see `int16_to_float`), last axis
            time; a 1 s clip at 16 kHz gives 49 frames with the defaults.
        sample_rate: samples per second.
        window_ms, stride_ms: analysis window and hop (40 / 20 ms).
        num_mfcc: coefficients kept (10).
        num_mel_bins, lower_hz, upper_hz: the mel filterbank (40, 20 Hz, 4 kHz).

    Raises:
        ValueError: for inconsistent settings, naming the argument.
    """
    _check(window_ms, stride_ms, num_mfcc, num_mel_bins, lower_hz, upper_hz,
           sample_rate)
    log_mel = log_mel_spectrogram(audio, sample_rate, window_ms, stride_ms,
                                  num_mel_bins, lower_hz, upper_hz)
    return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :num_mfcc]


def clip_features(audio_int16, stride_ms=STRIDE_MS, **kwargs):
    """One speech-commands clip (int16, any length) -> `[frames, num_mfcc, 1]`.

    Pads/cuts to 1 s first, as Hello Edge does; the trailing axis is the
    channel the zoo's conv models expect.
    """
    audio = pad_or_trim(int16_to_float(audio_int16), CLIP_SAMPLES)
    return mfcc(audio, stride_ms=stride_ms, **kwargs)[..., tf.newaxis]
