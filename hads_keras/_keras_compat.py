"""The few places where hads_keras relies on Keras internals, in one file.

Keras 3 has no public API to walk a Functional graph node by node; these
helpers wrap the private attributes so a Keras upgrade breaks one module.
"""

import keras
from keras.src.models.functional import Functional

_SUBCLASSED_HINT = (
    "HADS needs the layer graph: build the model as a keras.Sequential or "
    "with the Functional API, using hads_keras.layers (or keras.layers and "
    "then hads_keras.convert). A subclassed keras.Model hides its graph."
)


def as_functional(model):
    """The Functional graph of a built Sequential or Functional model."""
    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        if functional is None:
            raise ValueError(
                f"Model '{model.name}' is not built: give the Sequential an "
                "Input (keras.Input(shape=...)) or call build(input_shape) "
                "first.")
        return functional
    if isinstance(model, Functional):
        return model
    if isinstance(model, keras.Model):
        raise ValueError(
            f"Model '{model.name}' ({type(model).__name__}) is a subclassed "
            f"model. {_SUBCLASSED_HINT}")
    raise TypeError(
        f"Expected a keras.Model, got {type(model).__name__}.")


def ordered_nodes(functional):
    """Nodes of a Functional graph, inputs first (topological order)."""
    by_depth = functional._nodes_by_depth
    nodes = []
    for depth in sorted(by_depth, reverse=True):
        nodes.extend(by_depth[depth])
    return nodes


def is_graph_model(model):
    return isinstance(model, (keras.Sequential, Functional))


def unwrap(model):
    """The layer graph behind a model: a NestedModel's network, else itself."""
    return getattr(model, "hads_network", model)


def clone_graph(model, clone_layer):
    """Rebuild a Sequential/Functional model with `clone_layer(layer)` per layer.

    Layer names are kept; weights are not copied (the caller does it, as it
    knows how shapes change).
    """
    as_functional(model)  # clear error for subclassed / unbuilt models

    def clone(layer):
        if isinstance(layer, keras.Model):
            raise ValueError(
                f"Layer '{layer.name}' is a nested model; HADS needs a flat "
                "model. Build it as one Sequential/Functional model.")
        return clone_layer(layer)

    return keras.models.clone_model(model, clone_function=clone)


def layers_with_weights(model):
    """Layers that hold weights (InputLayers, whose names clone_model may
    change, never do)."""
    return [layer for layer in model.layers if layer.weights]
