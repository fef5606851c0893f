"""hads_keras: Hardware-Aware Deep Subnetworks for Keras 3.

One trained network becomes a family of nested subnetworks that a device
switches between at run time. The pipeline:

    model = hads_keras.convert(model)              # HADS layers, same weights
    importance = hads_keras.TaylorImportance()     # callback for model.fit
    plan = hads_keras.solve(model, importance, mac_targets=[1.0, .75, .5, .25])
    nested = hads_keras.apply(model, plan, calibration_data=x_train)
                                                   # permute, install the plan,
                                                   # recompute BN statistics
    nested.set_subnetwork(2)                       # switch: one assignment
"""

__version__ = "0.1.0"

import os as _os
import sys as _sys

# Public name -> the module that defines it.
_API = {
    "layers": ("hads_keras.layers", None),
    "static_subnetwork": ("hads_keras._runtime", "static_subnetwork"),
    "calibrate_batch_norm": ("hads_keras.calibration", "calibrate_batch_norm"),
    "convert": ("hads_keras.conversion", "convert"),
    "model_costs": ("hads_keras.costs", "model_costs"),
    "subnetwork_costs": ("hads_keras.costs", "subnetwork_costs"),
    "extract_subnetwork": ("hads_keras.extract", "extract_subnetwork"),
    "groups": ("hads_keras.graph", "groups"),
    "permute_units": ("hads_keras.permute", "permute"),
    "Plan": ("hads_keras.plan", "Plan"),
    "NestedModel": ("hads_keras.training", "NestedModel"),
    "apply": ("hads_keras.training", "apply"),
    "set_subnetwork": ("hads_keras.training", "set_subnetwork"),
    "TaylorImportance": ("hads_keras.importance", "TaylorImportance"),
    "l1_importance": ("hads_keras.importance", "l1_importance"),
    "random_importance": ("hads_keras.importance", "random_importance"),
    "taylor_importance": ("hads_keras.importance", "taylor_importance"),
    "solve": ("hads_keras.solve", "solve"),
    "uniform_plan": ("hads_keras.solve", "uniform_plan"),
}


def load_api():
    """Imports the public API (Keras, TensorFlow) and registers the HADS
    classes with Keras, so `keras.saving.load_model` finds them. Done by
    `import hads_keras` everywhere except in the `hads` command, which
    parses its arguments first."""
    import importlib

    for name, (module, attr) in _API.items():
        # Always assigned: importing the submodule hads_keras.solve sets the
        # package attribute `solve` to the module, the API wants the function.
        mod = importlib.import_module(module)
        globals()[name] = mod if attr is None else getattr(mod, attr)


def _started_as_cli():
    """True in the `hads` command (its console script, or `python -m
    hads_keras.cli`): `hads --help` must not wait for TensorFlow."""
    argv = list(getattr(_sys, "orig_argv", ()))
    if "-m" in argv and argv[argv.index("-m") + 1:][:1] == ["hads_keras.cli"]:
        return True
    return _os.path.basename(_sys.argv[0] if _sys.argv else "") in (
        "hads", "hads.exe", "hads-script.py")


if not _started_as_cli():
    load_api()


def __getattr__(name):
    # `hads_keras.export` loads the TFLite tooling only when first used; in
    # the `hads` command the rest of the API loads on first use too.
    if name in _API:
        load_api()
        return globals()[name]
    if name == "export":
        import importlib

        return importlib.import_module("hads_keras.export")
    raise AttributeError(f"module 'hads_keras' has no attribute {name!r}")
