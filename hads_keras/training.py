"""The nested model: one network, every subnetwork, a runtime switch.

`hads_keras.apply(model, plan)` returns a `NestedModel`. It owns one int32
variable, the active subnetwork, that every HADS layer of its network reads
inside the traced graph: `set_subnetwork(k)` is an assignment and never
retraces `predict` or `__call__`.

Training is multi-width (Yu et al., slimmable networks; HADS section 3.4):
`fit` runs every subnetwork on the same batch and minimises

    loss = sum_i pi_i * loss_i        (+ regularization losses, once)

where `pi_i` is proportional to the share of parameters subnetwork i uses
(or its square root, or user weights), normalised to sum 1. Each subnetwork
is traced with static widths (`hads_keras.static_subnetwork`), so its
forward and backward passes really use the sliced weights, and its
BatchNormalization layers update their own row of moving statistics.
Compiled metrics are reported per subnetwork: `sub0_loss`, `sub0_accuracy`,
`sub1_accuracy`, ... (and `val_...`), next to the weighted total `loss`.
"""

import contextlib
import math
import numbers

import keras
import numpy as np
import tensorflow as tf

# Keras internals used by the multi-width step (the same ones Keras's own
# TensorFlow trainer uses); kept to these imports.
from keras.src.losses import loss as _keras_loss
from keras.src.saving import serialization_lib as _serialization
from keras.src.trainers import compile_utils as _compile_utils
from keras.src.trainers.data_adapters import data_adapter_utils as _data_utils
from keras.src.utils import tracking as _tracking

from hads_keras import _keras_compat
from hads_keras import conversion as convert_lib
from hads_keras import graph as graph_lib
from hads_keras import permute as permute_lib
from hads_keras import costs as costs_lib
from hads_keras._runtime import LayerSlicing, static_subnetwork
from hads_keras.layers._base import SlicedLayerMixin
from hads_keras.plan import Plan


@keras.saving.register_keras_serializable(package="hads_keras")
class NestedModel(keras.Model):
    """A HADS network with a plan installed.

    Args:
        network: a built Sequential/Functional model made of
            `hads_keras.layers` whose BatchNormalization layers have
            `num_subnetworks == plan.num_subnetworks` (`hads_keras.apply`
            builds it for you).
        plan: the `Plan` (or its dict form).
    """

    # Set by compile(); see there.
    subnetwork_loss_weights = None
    _subnetwork_loss_trackers = None
    _distillation = 0.0
    _distillation_from_logits = False

    def __init__(self, network, plan, **kwargs):
        super().__init__(**kwargs)
        if isinstance(plan, dict):
            plan = Plan.from_dict(plan)
        analysis = graph_lib.analyze(network)
        plan.check_matches(analysis)
        if plan.order is not None:
            raise ValueError(
                "This plan still carries a unit order: use hads_keras.apply("
                "model, plan), which permutes the units first.")
        self.network = network
        self.plan = plan
        self._selector = keras.Variable(
            0, dtype="int32", trainable=False, name="subnetwork")
        _install(network, analysis, plan, self._selector)
        self._set_built_from(network)

    def _set_built_from(self, network):
        shapes = [tuple(t.shape) for t in network.inputs]
        self._build_shapes_dict = {"input_shape": shapes[0] if len(shapes) == 1 else shapes}
        self.built = True

    @property
    def hads_network(self):
        return self.network

    @property
    def num_subnetworks(self):
        return self.plan.num_subnetworks

    def call(self, inputs, training=None):
        return self.network(inputs, training=training)

    # Switching ----------------------------------------------------------

    def set_subnetwork(self, index):
        """Make subnetwork `index` active (0 = full). An assignment: no retrace."""
        self.plan.check_subnetwork(index)
        self._selector.assign(int(index))

    @property
    def active_subnetwork(self):
        return int(keras.ops.convert_to_numpy(self._selector))

    @contextlib.contextmanager
    def subnetwork(self, index):
        """Temporarily make subnetwork `index` active."""
        previous = self.active_subnetwork
        self.set_subnetwork(index)
        try:
            yield self
        finally:
            self._selector.assign(previous)

    # Multi-width training ------------------------------------------------

    @_tracking.no_automatic_dependency_tracking
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None,
                metrics=None, weighted_metrics=None,
                subnetwork_weights="params", distillation=0.0,
                distillation_from_logits=None, **kwargs):
        """Configure multi-width training: `fit` trains every subnetwork.

        Takes the arguments of `keras.Model.compile` (`run_eagerly`,
        `jit_compile`, `steps_per_execution`, ... pass through), and:

        Args:
            loss: the loss of one subnetwork against the labels (any Keras
                loss for the network's single output); applied to every
                subnetwork.
            metrics, weighted_metrics: computed for every subnetwork and
                logged as `sub{k}_{name}` (e.g. `sub0_accuracy`).
            subnetwork_weights: the weights pi_i of the subnetworks' losses:
                `"params"` (default; proportional to the share of parameters
                subnetwork i uses, as in the HADS paper), `"sqrt_params"`
                (its square root, as in the original HADS code), `"uniform"`,
                or a sequence of one non-negative number per subnetwork. They
                are normalised to sum 1 (`self.subnetwork_loss_weights`).
            distillation: in-place distillation strength alpha in [0, 1]
                (slimmable / US-Nets): subnetworks k >= 1 minimise
                `(1 - alpha) * loss(y, p_k) + alpha * CE(p_0, p_k)`, the full
                subnetwork's predictions p_0 (no gradient through them) as soft
                targets. 0 (default) switches it off.
            distillation_from_logits: whether the network outputs logits;
                default: the compiled loss's `from_logits`, else False
                (softmax probabilities).

        Raises:
            ValueError: naming the argument, for weights of the wrong length
                or sign, a distillation strength outside [0, 1], or a network
                with more than one output.
        """
        if len(self.network.outputs) != 1:
            raise ValueError(
                f"Multi-width training needs a network with one output; "
                f"'{self.network.name}' has {len(self.network.outputs)}.")
        for name, value in (("metrics", metrics),
                            ("weighted_metrics", weighted_metrics)):
            if value is not None and not isinstance(value, (list, tuple)):
                raise ValueError(
                    f"compile({name}=...) must be a list of metrics (applied "
                    f"to every subnetwork), got {type(value).__name__}.")
        pis = subnetwork_loss_weights(self.network, self.plan, subnetwork_weights)
        distillation = float(distillation)
        if not 0.0 <= distillation <= 1.0:
            raise ValueError(
                f"compile(distillation={distillation}): the in-place "
                "distillation strength must lie in [0, 1] (0 = off).")
        if distillation_from_logits is None:
            distillation_from_logits = bool(getattr(
                keras.losses.get(loss) if isinstance(loss, str) else loss,
                "from_logits", False))
        super().compile(optimizer=optimizer, loss=loss,
                        loss_weights=loss_weights, metrics=None,
                        weighted_metrics=None, **kwargs)
        self.subnetwork_loss_weights = pis
        self._distillation = distillation
        self._distillation_from_logits = bool(distillation_from_logits)
        count = self.num_subnetworks
        if metrics is not None or weighted_metrics is not None:
            # One "output" per subnetwork: Keras names them sub{k}_{metric}.
            self._compile_metrics = _SubnetworkMetrics(
                _per_subnetwork(metrics, count),
                _per_subnetwork(weighted_metrics, count),
                output_names=[f"sub{k}" for k in range(count)])
        self._subnetwork_loss_trackers = _LossTrackers(count)
        self._compile_config = _serialization.SerializableDict(
            optimizer=optimizer, loss=loss, loss_weights=loss_weights,
            metrics=metrics, weighted_metrics=weighted_metrics,
            subnetwork_weights=(subnetwork_weights
                                if isinstance(subnetwork_weights, str)
                                else [float(w) for w in subnetwork_weights]),
            distillation=distillation,
            distillation_from_logits=self._distillation_from_logits,
            **kwargs)

    def compile_from_config(self, config):
        """Recompile from a saved `.keras` file (see `keras.Model`)."""
        config = _serialization.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        metrics = list(super().metrics)
        trackers = self._subnetwork_loss_trackers
        if self.compiled and trackers is not None:
            # After the total `loss`, before the compiled metrics.
            position = 1 if self._loss_tracker is not None else 0
            metrics.insert(position, trackers)
        return metrics

    def train_step(self, data):
        """One multi-width step: every subnetwork on the same batch."""
        x, y, sample_weight = _data_utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            predictions, total = self._multi_width_loss(
                x, y, sample_weight, training=True)
            if self.optimizer is not None:
                total = self.optimizer.scale_loss(total)
        weights = self.trainable_weights
        gradients = tape.gradient(total, weights)
        self.optimizer.apply_gradients(zip(gradients, weights))
        return self._subnetwork_metrics(y, predictions, sample_weight)

    def test_step(self, data):
        """Evaluate every subnetwork (with its own BN statistics)."""
        x, y, sample_weight = _data_utils.unpack_x_y_sample_weight(data)
        predictions, _ = self._multi_width_loss(
            x, y, sample_weight, training=False)
        return self._subnetwork_metrics(y, predictions, sample_weight)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the per-subnetwork metrics.

        `y_pred` is a list with one prediction per subnetwork. A single
        prediction (Keras passes one while it builds the metrics) is scored
        for every subnetwork.
        """
        del x
        if not (isinstance(y_pred, (list, tuple))
                and len(y_pred) == self.num_subnetworks):
            y_pred = [y_pred] * self.num_subnetworks
        return self._subnetwork_metrics(y, list(y_pred), sample_weight)

    def _multi_width_loss(self, x, y, sample_weight, training):
        """Predictions of every subnetwork and the weighted total loss."""
        if y is None:
            raise ValueError(
                "Multi-width training and evaluation need labels: pass y (or "
                "a dataset of (x, y) pairs).")
        if self._compile_loss is None:
            raise ValueError(
                "Compile the nested model with a loss, e.g. nested.compile("
                "optimizer='adam', loss='sparse_categorical_crossentropy', "
                "metrics=['accuracy']).")
        batch = tf.shape(next(t for t in tf.nest.flatten(x) if t is not None))[0]
        predictions, losses = [], []
        for k in range(self.num_subnetworks):
            with static_subnetwork(k):
                y_pred = self.network(x, training=training)
            if k == 0:
                _check_labels(y, y_pred, self.loss)
            loss_k = self._compile_loss(y, y_pred, sample_weight)
            if k and self._distillation:
                teacher = tf.stop_gradient(predictions[0])
                soft = keras.losses.categorical_crossentropy(
                    keras.ops.softmax(teacher) if self._distillation_from_logits
                    else teacher,
                    y_pred, from_logits=self._distillation_from_logits)
                soft = _keras_loss.scale_loss_for_distribution(
                    keras.ops.mean(soft))
                loss_k = ((1.0 - self._distillation) * loss_k
                          + self._distillation * keras.ops.cast(soft, loss_k.dtype))
            predictions.append(y_pred)
            losses.append(loss_k)
            self._subnetwork_loss_trackers.metrics[k].update_state(
                _keras_loss.unscale_loss_for_distribution(loss_k),
                sample_weight=batch)
        total = keras.ops.sum(keras.ops.stack([
            keras.ops.cast(w, losses[0].dtype) * l
            for w, l in zip(self.subnetwork_loss_weights, losses)]))
        for extra in self.losses:  # regularizers: on the shared weights, once
            total = total + keras.ops.cast(
                self._aggregate_additional_loss(extra), total.dtype)
        self._loss_tracker.update_state(
            _keras_loss.unscale_loss_for_distribution(total),
            sample_weight=batch)
        return predictions, total

    def _subnetwork_metrics(self, y, predictions, sample_weight):
        if self._compile_metrics is not None:
            self._compile_metrics.update_state(
                [y] * self.num_subnetworks, predictions,
                sample_weight)
        return self.get_metrics_result()

    # Serialization -------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "network": keras.saving.serialize_keras_object(self.network),
            "plan": self.plan.to_dict(),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        network = keras.saving.deserialize_keras_object(
            config.pop("network"), custom_objects=custom_objects)
        plan = Plan.from_dict(config.pop("plan"))
        return cls(network, plan, **config)

    def build_from_config(self, config):
        # The network is rebuilt by from_config; nothing left to build.
        pass


def _install(network, analysis, plan, selector):
    """Give every HADS layer its widths in every subnetwork."""
    for name, wiring in analysis.wiring.items():
        layer = network.get_layer(name)
        if not isinstance(layer, SlicedLayerMixin):
            raise ValueError(
                f"Layer '{name}' is a plain keras.layers.{type(layer).__name__};"
                " convert the model first (hads_keras.convert or "
                "hads_keras.apply).")
        in_widths = in_segments = None
        segment_widths = [segment_widths_of(analysis, plan, s) for s in wiring.in_segments]
        sliced = any(w is not None for w in segment_widths)
        channels = sum(s.channels for s in wiring.in_segments)
        if sliced and wiring.segmented:
            in_segments = [(s.channels, w or [s.channels] * plan.num_subnetworks)
                           for s, w in zip(wiring.in_segments, segment_widths)]
        elif sliced:
            in_widths = segment_widths[0]
        elif wiring.kind == "batchnorm" and wiring.varies:
            # Never sliced, but fed by sliced layers: its statistics differ
            # per subnetwork, so each subnetwork uses its own row (all
            # channels). A BN that no sliced layer feeds keeps using row 0.
            in_widths = [channels] * plan.num_subnetworks
        out_widths = None
        if wiring.out_group is not None and not analysis[wiring.out_group].fixed:
            out_widths = plan.widths(wiring.out_group)
        if wiring.kind == "batchnorm" and layer.num_subnetworks != plan.num_subnetworks:
            raise ValueError(
                f"Layer '{name}' keeps statistics for {layer.num_subnetworks} "
                f"subnetworks but the plan has {plan.num_subnetworks}; build "
                "the nested model with hads_keras.apply(model, plan).")
        layer.install_slicing(LayerSlicing(
            in_widths, out_widths, wiring.in_spatial, selector, in_segments))


def segment_widths_of(analysis, plan, segment):
    """Active channels of one input segment per subnetwork (None: fixed)."""
    if analysis[segment.group].fixed:
        return None
    return [w * segment.multiplier for w in plan.widths(segment.group)]


def apply(model, plan, importance=None, calibration_data=None,
          calibration_batches=None):
    """Build the nested model: permute units, install the plan.

    Args:
        model: a built Sequential/Functional model (Keras or HADS layers);
            it is not modified.
        plan: a `Plan`. If it carries a unit order (solvers set it from the
            importance scores), units are permuted by it first. If its
            subnetwork 0 keeps fewer units than the model (`plan.reduced`:
            a largest subnetwork under budget), only those units are kept:
            the nested model is physically smaller and its plan is
            `plan.rebased()` (subnetwork 0 = its full network).
        importance: optional mapping group -> scores; when given and the plan
            has no order, units are sorted by descending importance.
        calibration_data: optional input samples (an array, `(x, y)`, a
            `tf.data.Dataset` or batches); when given, every subnetwork's
            BatchNormalization statistics are recomputed from them
            (`hads_keras.calibrate_batch_norm`; forward passes only).
        calibration_batches: use at most this many batches of it.

    Returns:
        A `NestedModel` whose subnetwork k computes with the first
        `plan.widths(g)[k]` units of every group g, its BatchNormalization
        statistics for every subnetwork starting from the trained ones
        (without `calibration_data`) or measured on `calibration_data`.
    """
    if isinstance(model, NestedModel):
        # Its units are already permuted: a plan's order would be applied a
        # second time, and its per-subnetwork BN statistics replaced.
        raise ValueError(
            f"Model '{model.name}' is already a nested model (plan installed, "
            "units permuted). Apply the plan to the original trained model; to "
            "re-plan, solve on hads_keras.extract_subnetwork(nested, 0) and "
            "apply to that.")
    model = _keras_compat.unwrap(model)
    if not isinstance(plan, Plan):
        raise TypeError(f"plan must be a hads_keras.Plan, got {type(plan).__name__}.")
    plan.check_matches(graph_lib.analyze(model))
    order = plan.order
    if order is None and importance is not None:
        order = permute_lib.order_by_importance(importance)
    if plan.reduced:
        # No subnetwork uses the units past subnetwork 0's: drop them.
        model = permute_lib.select_units(model, _largest_units(plan, order or {}))
        plan = plan.rebased()
    elif order is not None:
        model = permute_lib.permute(model, order)
    network = convert_lib.convert(model, num_subnetworks=plan.num_subnetworks)
    nested = NestedModel(network, plan.without_order(), name=f"nested_{model.name}")
    if calibration_data is not None:
        from hads_keras.calibration import calibrate_batch_norm
        calibrate_batch_norm(nested, calibration_data, batches=calibration_batches)
    return nested


def _largest_units(plan, order):
    """Per group, the units subnetwork 0 of a reduced plan keeps: the first
    of the unit order (all units in their order where it keeps all)."""
    units = {}
    for group in plan.groups:
        width, full = plan.widths(group)[0], plan.full_widths[group]
        if group not in order and width == full:
            continue
        units[group] = np.asarray(order.get(group, np.arange(full)))[:width]
    return units


def set_subnetwork(model, index):
    """Make subnetwork `index` active on a nested model (0 = full)."""
    if isinstance(model, NestedModel):
        model.set_subnetwork(index)
        return
    if isinstance(index, bool) or not isinstance(index, numbers.Integral):
        raise TypeError(f"Subnetwork index must be an int, got {type(index).__name__}.")
    if index != 0:
        raise ValueError(
            f"Model '{model.name}' has no plan installed, so only subnetwork "
            f"0 (the full network) exists; got {index}. Use "
            "hads_keras.apply(model, plan) first.")


# Multi-width training helpers ----------------------------------------------

SUBNETWORK_WEIGHTINGS = ("params", "sqrt_params", "uniform")


def subnetwork_loss_weights(model, plan, weighting="params"):
    """The weights pi_i of the subnetworks' losses, normalised to sum 1.

    Args:
        model: the HADS network (or nested model) the plan belongs to.
        plan: its `Plan`.
        weighting: `"params"` (pi_i proportional to the share of parameters
            subnetwork i uses; the HADS paper), `"sqrt_params"` (square root
            of that share; the original HADS code), `"uniform"`, or one
            non-negative number per subnetwork.

    Returns:
        A float64 NumPy array of length `plan.num_subnetworks`.
    """
    count = plan.num_subnetworks
    if isinstance(weighting, str):
        if weighting not in SUBNETWORK_WEIGHTINGS:
            raise ValueError(
                f"subnetwork_weights='{weighting}' is not known; use one of "
                f"{SUBNETWORK_WEIGHTINGS} or a list of {count} numbers.")
        if weighting == "uniform":
            raw = np.ones(count)
        else:
            params = np.array([c["params"] for c in costs_lib.subnetwork_costs(
                _keras_compat.unwrap(model), plan, resources=("params",))],
                dtype=np.float64)
            raw = params / params[0]
            if weighting == "sqrt_params":
                raw = np.sqrt(raw)
    else:
        try:
            raw = np.array([float(w) for w in weighting], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                "subnetwork_weights must be a name "
                f"{SUBNETWORK_WEIGHTINGS} or a sequence of numbers, got "
                f"{weighting!r}.") from None
        if raw.shape != (count,):
            raise ValueError(
                f"subnetwork_weights has {raw.size} entries but the plan has "
                f"{count} subnetworks; give one weight per subnetwork "
                "(index 0 = full network).")
        if not np.all(np.isfinite(raw)) or np.any(raw < 0):
            raise ValueError(
                f"subnetwork_weights must be finite and non-negative, got "
                f"{raw.tolist()}.")
    if raw.sum() <= 0:
        raise ValueError(
            "subnetwork_weights are all zero: at least one subnetwork must "
            "carry weight.")
    return raw / raw.sum()


class _SubnetworkMetrics(_compile_utils.CompileMetrics):
    """Keras's compiled metrics with one "output" per subnetwork.

    The metric objects themselves are renamed `sub{k}_{name}`, so that
    callbacks in `mode="auto"` (EarlyStopping, ModelCheckpoint) find them by
    the name they monitor (e.g. `val_sub3_accuracy`).
    """

    def build(self, y_true, y_pred):
        super().build(y_true, y_pred)
        for metrics_list in self._flat_metrics + self._flat_weighted_metrics:
            if metrics_list and metrics_list.output_name:
                for metric in metrics_list.metrics:
                    metric.name = f"{metrics_list.output_name}_{metric.name}"
                metrics_list.output_name = None


class _LossTrackers(_compile_utils.MetricsList):
    """The unweighted loss of every subnetwork: `sub{k}_loss` (a Mean each)."""

    def __init__(self, count):
        trackers = [keras.metrics.Mean(name=f"sub{k}_loss") for k in range(count)]
        for tracker in trackers:
            tracker._direction = "down"   # lets callbacks' mode="auto" minimise
        super().__init__(trackers, name="subnetwork_losses")

    @property
    def variables(self):
        return [v for m in self.metrics for v in m.variables]

    def result(self):
        return {m.name: m.result() for m in self.metrics}


def _per_subnetwork(metrics, count):
    """One copy of a metrics list per subnetwork (metric objects are cloned:
    a Keras metric object holds the state of one stream of predictions)."""
    if metrics is None:
        return None
    copies = []
    for k in range(count):
        copies.append([
            m if k == 0 or not isinstance(m, keras.metrics.Metric)
            else type(m).from_config(m.get_config())
            for m in metrics])
    return copies


def _loss_name(loss):
    if isinstance(loss, str):
        return loss.lower()
    name = getattr(loss, "name", None) or getattr(loss, "__name__", None)
    return (name or type(loss).__name__).lower()


def _check_labels(y, y_pred, loss):
    """Clear errors for labels that cannot match the network's output.

    Checked on static shapes while the step is traced.
    """
    if y is None or tf.nest.is_nested(y):
        return
    y_shape, p_shape = tuple(y.shape), tuple(y_pred.shape)
    if len(p_shape) < 2 or None in p_shape[1:] or not y_shape:
        return
    classes = p_shape[-1]
    name = _loss_name(loss)
    sparse = "sparse" in name or name in ("scce",)
    hint = (f"the network outputs shape (batch, {', '.join(map(str, p_shape[1:]))}); "
            "give integer class labels of shape (batch,) with "
            "sparse_categorical_crossentropy, or one-hot labels of shape "
            f"(batch, {classes}) with categorical_crossentropy.")
    if y_shape[0] is not None and p_shape[0] is not None and y_shape[0] != p_shape[0]:
        raise ValueError(
            f"Labels have {y_shape[0]} rows but the batch has {p_shape[0]} "
            "inputs.")
    if len(y_shape) == len(p_shape):
        last = y_shape[-1]
        if last is None:
            return
        if sparse and last != 1:
            raise ValueError(
                f"Labels of shape {y_shape} do not fit loss '{name}', which "
                f"expects class indices: {hint}")
        if not sparse and last not in (1, classes):
            raise ValueError(f"Labels of shape {y_shape} do not fit: {hint}")
        if not sparse and last == 1 and classes > 1 and "categorical" in name:
            raise ValueError(
                f"Labels of shape {y_shape} look like class indices but loss "
                f"'{name}' expects one-hot labels: {hint}")
    elif len(y_shape) == len(p_shape) - 1:
        if not sparse and "categorical" in name:
            raise ValueError(
                f"Labels of shape {y_shape} look like class indices but loss "
                f"'{name}' expects one-hot labels: {hint}")
    else:
        raise ValueError(f"Labels of shape {y_shape} do not fit: {hint}")
