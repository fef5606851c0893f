"""Unit importance: first-order Taylor scores, and the L1 / random baselines.

Taylor importance (Molchanov et al., CVPR 2019, "Importance estimation for
neural network pruning"): removing a unit changes the loss by about
`sum over its parameters of g * w`. HADS accumulates the gradient `g` over
many batches and scores `I = |sum g_acc * w|`; Molchanov's own variant sums
the per-batch squares `(sum g_b * w_b)^2` (`mode="squared"`).

Which parameters stand for a unit (`parameter=`):

* `"auto"` (default): the BN scale `gamma` when the group has a
  BatchNormalization, else the producer's kernel and bias. Why: a Dense or
  Conv2D followed by BN is invariant to rescaling its weights, so the
  directional derivative `sum g * w` of its kernel is zero up to noise;
  gamma carries the unit's scale instead (the paper's `I = |g_gamma*gamma|`).
* `"gamma"`, `"producer"`, or `"all"` (every parameter of the unit in every
  member: producer, BN, depthwise channels, consumer rows).

Scores are a dict group name -> float64 array of its units (sliceable groups
only), what `hads_keras.solve` and `hads_keras.apply` take.
"""

import keras
import numpy as np
import tensorflow as tf

from hads_keras import _keras_compat
from hads_keras import graph as graph_lib

PARAMETERS = ("auto", "gamma", "producer", "all")
MODES = ("accumulated", "squared")


class _UnitParameter:
    """One variable of a group and how to sum it into per-unit values."""

    def __init__(self, variable, member, role, group_width, layer):
        self.variable = variable
        self.member = member
        self.role = role  # "kernel_out", "vector", "dw_kernel", "kernel_in"
        self.width = group_width
        self.layer = layer

    def per_unit(self, values):
        """Sum `values` (shaped like the variable) into a [width] tensor."""
        m = self.member.multiplier
        v = tf.convert_to_tensor(values)
        # The group's channels of the layer's input (behind a concatenation:
        # its segment, from `member.offset`).
        start, stop = self.member.offset, self.member.offset + self.width * m
        if self.role == "kernel_out":
            per_channel = tf.reduce_sum(tf.reshape(v, [-1, v.shape[-1]]), axis=0)
            return per_channel
        if self.role == "vector":
            if self.member.role != "producer":
                per_input = getattr(self.layer, "depth_multiplier", 1)
                v = v[start * per_input:stop * per_input]
            return tf.reduce_sum(tf.reshape(v, [self.width, -1]), axis=1)
        if self.role == "dw_kernel":
            per_channel = tf.reduce_sum(v, axis=[0, 1, 3])[start:stop]
            return tf.reduce_sum(tf.reshape(per_channel, [self.width, m]), axis=1)
        if self.role == "kernel_in":
            if self.member.spatial > 1:
                v = tf.reshape(v, [self.member.spatial, -1, v.shape[-1]])
                per_channel = tf.reduce_sum(v, axis=[0, 2])
            else:
                per_channel = tf.reduce_sum(
                    tf.reshape(v, [-1, v.shape[-2], v.shape[-1]]), axis=[0, 2])
            return tf.reduce_sum(tf.reshape(per_channel[start:stop], [self.width, m]), axis=1)
        raise AssertionError(self.role)


def _group_parameters(model, group, parameter):
    """The `_UnitParameter`s standing for the units of `group`."""
    bns = _producer_batchnorms(model, group)
    if parameter == "auto":
        parameter = "gamma" if bns and getattr(
            model.get_layer(bns[0].layer), "scale", False) else "producer"
    out = []
    for member in group.members:
        layer = model.get_layer(member.layer)
        if parameter == "gamma":
            # Every BN of the group (a merged group has one per branch): the
            # unit's Taylor score sums over all its parameters.
            if not any(member is bn for bn in bns):
                continue
            if not layer.scale:
                raise ValueError(f"Layer '{layer.name}' has scale=False: no gamma to score group '{group.name}' with.")
            out.append(_UnitParameter(layer.gamma, member, "vector", group.width, layer))
        elif member.role == "producer":  # "producer" and "all"
            out.append(_UnitParameter(layer.kernel, member, "kernel_out", group.width, layer))
            if layer.use_bias:
                out.append(_UnitParameter(layer.bias, member, "vector", group.width, layer))
        elif parameter == "all":
            if member.role == "batchnorm":
                for v in (layer.gamma if layer.scale else None,
                          layer.beta if layer.center else None):
                    if v is not None:
                        out.append(_UnitParameter(v, member, "vector", group.width, layer))
            elif member.role == "depthwise":
                out.append(_UnitParameter(layer.kernel, member, "dw_kernel", group.width, layer))
                if layer.use_bias:
                    out.append(_UnitParameter(layer.bias, member, "vector", group.width, layer))
            elif member.role == "consumer":
                out.append(_UnitParameter(layer.kernel, member, "kernel_in", group.width, layer))
    if parameter == "gamma" and not out:
        raise ValueError(
            f"Group '{group.name}' has no BatchNormalization after its "
            "producer; use parameter='producer' or 'auto'.")
    return out


def _producer_batchnorms(model, group):
    """The BNs standing for the group's units: those right after one of its
    producers (a merged group has one per branch); else the first BN."""
    bns = [m for m in group.members_with_role("batchnorm") if m.multiplier == 1]
    producers = {m.layer for m in group.members_with_role("producer")}
    after = []
    for bn in bns:
        history = getattr(model.get_layer(bn.layer).input, "_keras_history", None)
        if history is not None and history.operation.name in producers:
            after.append(bn)
    return after or bns[:1]


def _check_options(parameter, mode):
    if parameter not in PARAMETERS:
        raise ValueError(f"parameter must be one of {PARAMETERS}, got {parameter!r}.")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")


class _Accumulator:
    """Per-unit Taylor statistics, updated from (gradient, variable) pairs."""

    def __init__(self, model, parameter="auto", mode="accumulated"):
        _check_options(parameter, mode)
        self.mode = mode
        network = _keras_compat.unwrap(model)
        analysis = graph_lib.analyze(network)
        self.groups = analysis.sliceable
        self.params = {g.name: _group_parameters(network, g, parameter)
                       for g in self.groups}
        variables = {}
        for plist in self.params.values():
            for p in plist:
                variables[id(p.variable)] = p.variable
        self._variables = variables
        # Gradients arrive paired with backend variables or Keras ones;
        # both map to the Keras variable's id.
        self._key_of = {id(_raw(v)): k for k, v in variables.items()}
        self.batches = keras.Variable(0, dtype="int64", trainable=False, name="taylor_batches")
        if mode == "accumulated":
            # Accumulated gradient per variable; scores use the final weights.
            self.sums = {k: keras.Variable(np.zeros(v.shape, "float32"), trainable=False,
                                           name="taylor_grad_sum")
                         for k, v in variables.items()}
        else:
            self.sums = {g.name: keras.Variable(np.zeros(g.width, "float64"), trainable=False,
                                                dtype="float64", name="taylor_sq_sum")
                         for g in self.groups}

    def update(self, grads_and_vars):
        """Add one batch (graph-safe). Ignores variables it does not score."""
        grads = {}
        for g, v in grads_and_vars:
            key = self._key_of.get(id(_raw(v)))
            if g is not None and key is not None:
                grads[key] = g
        if self.mode == "accumulated":
            for key, g in grads.items():
                self.sums[key].assign_add(tf.cast(tf.convert_to_tensor(g), "float32"))
        else:
            for group in self.groups:
                total = 0.0
                for p in self.params[group.name]:
                    g = grads.get(id(p.variable))
                    if g is None:
                        continue
                    total += p.per_unit(tf.convert_to_tensor(g) * tf.convert_to_tensor(p.variable))
                self.sums[group.name].assign_add(tf.square(tf.cast(total, "float64")))
        self.batches.assign_add(1)

    def scores(self):
        batches = int(keras.ops.convert_to_numpy(self.batches))
        if batches == 0:
            raise ValueError(
                "No batch was seen: importance needs at least one training "
                "batch (empty dataset, or batches=0?).")
        out = {}
        for group in self.groups:
            if self.mode == "accumulated":
                total = np.zeros(group.width)
                for p in self.params[group.name]:
                    g = keras.ops.convert_to_numpy(self.sums[id(p.variable)])
                    w = keras.ops.convert_to_numpy(p.variable)
                    total += keras.ops.convert_to_numpy(p.per_unit(g.astype("float64") * w))
                score = np.abs(total)
            else:
                score = keras.ops.convert_to_numpy(self.sums[group.name])
            score = np.asarray(score, dtype=np.float64)
            if not np.all(np.isfinite(score)):
                raise ValueError(
                    f"Importance of group '{group.name}' is not finite (NaN/inf "
                    "gradients?); check the loss and the data.")
            out[group.name] = score
        return out


def _raw(variable):
    """The backend variable behind a Keras variable (identity otherwise)."""
    return getattr(variable, "value", variable) if isinstance(variable, keras.Variable) else variable


class TaylorImportance(keras.callbacks.Callback):
    """Accumulate first-order Taylor importance during `model.fit`.

    The callback taps the gradients the optimizer receives (it wraps the
    optimizer's `apply_gradients` for the duration of `fit`), so training is
    unchanged: same gradients, same updates, same weights.

    Args:
        batches: number of training batches to accumulate (default: every
            batch of the fit).
        parameter: which parameters stand for a unit (see module docs).
        mode: "accumulated" (HADS: |sum_b g_b * w|) or "squared"
            (Molchanov: sum_b (sum g_b * w_b)^2).

    After `fit`, `scores` is a dict group name -> per-unit scores.
    """

    def __init__(self, batches=None, parameter="auto", mode="accumulated"):
        super().__init__()
        if batches is not None and int(batches) < 1:
            raise ValueError(f"batches must be >= 1 (or None for all), got {batches}.")
        _check_options(parameter, mode)
        self.batches = None if batches is None else int(batches)
        self.parameter = parameter
        self.mode = mode
        self._accumulator = None
        self._scores = None

    def on_train_begin(self, logs=None):
        model = self.model
        optimizer = model.optimizer
        if optimizer is None:
            raise ValueError("TaylorImportance needs a compiled model (model.compile).")
        self._accumulator = _Accumulator(model, self.parameter, self.mode)
        self._active = keras.Variable(True, dtype="bool", trainable=False, name="taylor_active")
        accumulator, active = self._accumulator, self._active
        original = optimizer.apply_gradients

        def apply_gradients(grads_and_vars, *args, **kwargs):
            grads_and_vars = list(grads_and_vars)
            tf.cond(tf.convert_to_tensor(active),
                    lambda: _run(accumulator.update, grads_and_vars),
                    lambda: tf.constant(False))
            return original(grads_and_vars, *args, **kwargs)

        self._original_apply = original
        optimizer.apply_gradients = apply_gradients
        model.make_train_function(force=True)

    def on_train_batch_end(self, batch, logs=None):
        if self.batches is not None and self._seen() >= self.batches:
            self._active.assign(False)

    def _seen(self):
        return int(keras.ops.convert_to_numpy(self._accumulator.batches))

    def on_train_end(self, logs=None):
        optimizer = self.model.optimizer
        optimizer.apply_gradients = self._original_apply
        del self._original_apply
        # Drop the traced step that taps gradients; the next fit retraces.
        self.model.train_function = None
        self._scores = self._accumulator.scores()

    @property
    def scores(self):
        if self._scores is None:
            raise ValueError("No importance yet: pass the callback to model.fit first.")
        return self._scores

    # Mapping interface, so the callback can be passed where scores are expected.
    def items(self):
        return self.scores.items()

    def __getitem__(self, group):
        return self.scores[group]

    def keys(self):
        return self.scores.keys()


def _run(fn, *args):
    fn(*args)
    return tf.constant(True)


def taylor_importance(model, data, batches=None, loss=None, parameter="auto",
                      mode="accumulated"):
    """Taylor importance without training: gradients over `batches` batches.

    Args:
        model: the model (Keras or HADS layers, or a NestedModel at its
            active subnetwork).
        data: a `tf.data.Dataset` or iterable of `(x, y)` batches.
        batches: how many batches to use (default: all).
        loss: a Keras loss (default: the compiled loss, else sparse
            categorical cross-entropy).
    """
    if batches is not None and int(batches) < 1:
        raise ValueError(f"batches must be >= 1 (or None for all), got {batches}.")
    accumulator = _Accumulator(model, parameter, mode)
    if loss is None:
        loss = getattr(model, "loss", None) or keras.losses.SparseCategoricalCrossentropy()
    loss_fn = keras.losses.get(loss) if isinstance(loss, str) else loss
    trainable = model.trainable_variables

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            value = loss_fn(y, model(x, training=False))
        grads = tape.gradient(value, trainable)
        accumulator.update(zip(grads, trainable))

    for i, batch in enumerate(data):
        if batches is not None and i >= batches:
            break
        x, y = batch[0], batch[1]
        step(x, y)
    return accumulator.scores()


def l1_importance(model, fold_batch_norm=True):
    """L1 norm of each unit's producer weights (Li et al., ICLR 2017).

    A Dense/Conv2D followed by BatchNormalization is invariant to rescaling
    its kernel (BN divides the scale out again), so the raw kernel norm says
    nothing about such a unit. By default the kernel is therefore folded
    with the BN after it first, as the exported model computes it: unit c
    scores `|gamma_c| / sqrt(moving_variance_c + epsilon) * sum |W[..., c]|`
    (the full network's statistics; `gamma` is 1 when `scale=False`).
    Units without BN after their producer score `sum |W[..., c]|`.

    Args:
        model: a Keras/HADS model (or a nested one).
        fold_batch_norm: False scores the raw kernels even before BN (the
            former behaviour, scale-free and therefore not a fair baseline
            for BN networks).
    """
    network = _keras_compat.unwrap(model)
    out = {}
    for group in graph_lib.analyze(network).sliceable:
        producer = group.members_with_role("producer")[0]
        kernel = keras.ops.convert_to_numpy(network.get_layer(producer.layer).kernel)
        score = np.abs(kernel.astype(np.float64)).reshape(-1, kernel.shape[-1]).sum(axis=0)
        bns = [m for m in group.members_with_role("batchnorm") if m.multiplier == 1]
        if fold_batch_norm and bns:
            offset = bns[0].offset  # its segment, behind a concatenation
            score = score * _bn_scale(network.get_layer(bns[0].layer))[
                offset:offset + group.width]
        out[group.name] = score
    return out


def _bn_scale(layer):
    """|gamma| / sqrt(var + eps) of a BN layer, per channel (full network)."""
    variance = keras.ops.convert_to_numpy(layer.moving_variance).astype(np.float64)
    if variance.ndim == 2:   # HADS BN: one row per subnetwork, row 0 = full
        variance = variance[0]
    gamma = (np.abs(keras.ops.convert_to_numpy(layer.gamma).astype(np.float64))
             if layer.scale else np.ones_like(variance))
    return gamma / np.sqrt(variance + layer.epsilon)


def random_importance(model, seed=0):
    """Seeded random scores: the baseline any importance must beat."""
    rng = np.random.default_rng(seed)
    network = _keras_compat.unwrap(model)
    return {g.name: rng.random(g.width) for g in graph_lib.analyze(network).sliceable}


def as_scores(importance):
    """Accept a TaylorImportance callback or a dict of scores."""
    if isinstance(importance, TaylorImportance):
        return importance.scores
    if hasattr(importance, "items"):
        return {name: np.asarray(v, dtype=np.float64) for name, v in importance.items()}
    raise TypeError(
        "importance must be a dict group -> scores or a TaylorImportance "
        f"callback, got {type(importance).__name__}.")
