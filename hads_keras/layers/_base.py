"""Shared behaviour of the HADS layers: where their widths come from."""

import keras

from hads_keras._runtime import LayerSlicing


class SlicedLayerMixin:
    """Gives a Keras layer a runtime width.

    `hads_slicing` is None until a plan is installed (see
    `hads_keras.apply`); the layer then computes exactly like its
    `keras.layers` parent. Once installed, it holds the layer's widths in
    every subnetwork and the selector variable of the nested model.
    """

    _hads_slicing = None

    def __init__(self, *args, hads_keep=False, **kwargs):
        super().__init__(*args, **kwargs)
        # Kept whole: `hads_keras.analyze` never slices this layer's group
        # (set by `hads_keras.convert(model, keep=[...])`, saved with it).
        self.hads_keep = bool(hads_keep)

    def get_config(self):
        config = super().get_config()
        if self.hads_keep:
            config["hads_keep"] = True
        return config

    @property
    def hads_slicing(self):
        return self._hads_slicing

    def install_slicing(self, slicing):
        if slicing is not None and not isinstance(slicing, LayerSlicing):
            raise TypeError(
                f"Layer '{self.name}': expected a LayerSlicing, got "
                f"{type(slicing).__name__}."
            )
        # object.__setattr__: keep Keras from tracking the shared selector
        # variable as a weight of every layer.
        object.__setattr__(self, "_hads_slicing", slicing)
        if slicing is not None and slicing.in_widths is not None and self.built:
            # Inputs may be narrower than the full width (static subnetworks
            # pass truly narrow tensors); keep only the rank check.
            self.input_spec = keras.layers.InputSpec(ndim=len(self.input.shape))

    def _check_channels_last(self):
        if getattr(self, "data_format", "channels_last") != "channels_last":
            raise ValueError(
                f"Layer '{self.name}': HADS layers slice the last axis and "
                "support only data_format='channels_last'."
            )
