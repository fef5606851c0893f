"""Few-shot fine-tuning data: N samples per class, reproducibly.

The HADS paper compares bottom-up and top-down plans when only a few samples
per class are available for fine-tuning. This picks them from NumPy arrays
(for a `tf.data` pipeline see `hads_keras.datasets.few_shot`):

    x_few, y_few = samples_per_class(x_train, y_train, 5, seed=0)
    for method in ("bottom_up", "top_down"):
        nested = hads.apply(model, hads.solve(model, importance,
                                              mac_targets=[1, .75, .5, .25],
                                              method=method),
                            calibration_data=x_few)   # BN statistics per subnetwork
        nested.compile("adam", "sparse_categorical_crossentropy",
                       metrics=["accuracy"])
        nested.fit(x_few, y_few, epochs=20)
        print(method, nested.evaluate(x_test, y_test, return_dict=True))

`hads demo --few-shot N` does the fine-tuning part on digits.
"""

import numpy as np


def samples_per_class(x, y, n, seed=0):
    """A random subset with exactly `n` samples of every class.

    Args:
        x: array of samples, first axis = samples.
        y: integer class labels, shape `[N]` (or one-hot `[N, C]`).
        n: samples to keep per class (>= 1).
        seed: the subset depends only on it (and the data).

    Returns:
        `(x_subset, y_subset)`, classes in ascending order, each class's
        samples in random order; labels in the form given.

    Raises:
        ValueError: when `n < 1`, `x` and `y` disagree on the number of
            samples, or a class has fewer than `n` samples (naming it).
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"samples_per_class: n must be >= 1, got {n}.")
    x = np.asarray(x)
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(
            f"samples_per_class: x has {len(x)} samples but y has {len(y)}.")
    labels = y.argmax(-1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(len(y))
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < n:
            raise ValueError(
                f"samples_per_class: class {label} has only {len(members)} "
                f"samples, fewer than n={n}.")
        chosen.append(rng.choice(members, size=n, replace=False))
    index = np.concatenate(chosen)
    return x[index], y[index]
