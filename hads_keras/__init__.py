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

from hads_keras import layers
from hads_keras._runtime import static_subnetwork
from hads_keras.calibration import calibrate_batch_norm
from hads_keras.conversion import convert
from hads_keras.costs import model_costs, subnetwork_costs
from hads_keras.extract import extract_subnetwork
from hads_keras.graph import groups
from hads_keras.permute import permute as permute_units
from hads_keras.plan import Plan
from hads_keras.training import NestedModel, apply, set_subnetwork
from hads_keras.importance import (TaylorImportance, l1_importance,
                                   random_importance, taylor_importance)
from hads_keras.solve import solve, uniform_plan


def __getattr__(name):
    # `hads_keras.export` loads the TFLite tooling only when first used.
    if name == "export":
        import importlib

        return importlib.import_module("hads_keras.export")
    raise AttributeError(f"module 'hads_keras' has no attribute {name!r}")
