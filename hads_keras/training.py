"""The nested model: one network, every subnetwork, a runtime switch.

`hads_keras.apply(model, plan)` returns a `NestedModel`. It owns one int32
variable, the active subnetwork, that every HADS layer of its network reads
inside the traced graph: `set_subnetwork(k)` is an assignment and never
retraces `predict` or `__call__`.
"""

import contextlib
import numbers

import keras

from hads_keras import _keras_compat
from hads_keras import conversion as convert_lib
from hads_keras import graph as graph_lib
from hads_keras import permute as permute_lib
from hads_keras._runtime import LayerSlicing
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
        in_group = analysis[wiring.in_group]
        in_widths = None
        if not in_group.fixed:
            in_widths = [w * wiring.in_multiplier for w in plan.widths(in_group.name)]
        out_widths = None
        if wiring.out_group is not None and not analysis[wiring.out_group].fixed:
            out_widths = plan.widths(wiring.out_group)
        if wiring.kind == "batchnorm" and layer.num_subnetworks != plan.num_subnetworks:
            raise ValueError(
                f"Layer '{name}' keeps statistics for {layer.num_subnetworks} "
                f"subnetworks but the plan has {plan.num_subnetworks}; build "
                "the nested model with hads_keras.apply(model, plan).")
        layer.install_slicing(LayerSlicing(
            in_widths, out_widths, wiring.in_spatial, selector))


def apply(model, plan, importance=None):
    """Build the nested model: permute units, install the plan.

    Args:
        model: a built Sequential/Functional model (Keras or HADS layers);
            it is not modified.
        plan: a `Plan`. If it carries a unit order (solvers set it from the
            importance scores), units are permuted by it first.
        importance: optional mapping group -> scores; when given and the plan
            has no order, units are sorted by descending importance.

    Returns:
        A `NestedModel` whose subnetwork k computes with the first
        `plan.widths(g)[k]` units of every group g, its BatchNormalization
        statistics for every subnetwork starting from the trained ones.
    """
    model = _keras_compat.unwrap(model)
    if not isinstance(plan, Plan):
        raise TypeError(f"plan must be a hads_keras.Plan, got {type(plan).__name__}.")
    plan.check_matches(graph_lib.analyze(model))
    order = plan.order
    if order is None and importance is not None:
        order = permute_lib.order_by_importance(importance)
    if order is not None:
        model = permute_lib.permute(model, order)
    network = convert_lib.convert(model, num_subnetworks=plan.num_subnetworks)
    return NestedModel(network, plan.without_order(), name=f"nested_{model.name}")


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
