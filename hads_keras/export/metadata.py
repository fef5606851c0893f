"""The plan and class labels inside the `.tflite` file.

Both go into the model's own `metadata` list (named buffers, part of the
TFLite schema), so no `tflite-support` is needed: that package pins
protobuf < 4, which breaks TensorFlow 2.21 on install.

Entries (docs/nested_tflite_format.md):

* `hads_plan`: UTF-8 JSON; the `Plan` dict (groups and slicing points,
  `costs` per subnetwork: MACs and parameters) plus `operators`, the
  per-subnetwork widths of each HADS operator.
* `hads_labels`: UTF-8, one class label per line (when given).
* `hads_materialized` (only in `materialize`d models): JSON
  `{"subnetwork": k, "num_subnetworks": S}`.
"""

import json

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from hads_keras.export import flatbuffer

PLAN_KEY = "hads_plan"
LABELS_KEY = "hads_labels"
MATERIALIZED_KEY = "hads_materialized"


def set_entry(model, name, payload):
    """Add (or replace) a named metadata entry in a `ModelT`."""
    data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    remove_entry(model, name)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = flatbuffer.add_buffer(model, np.frombuffer(data, np.uint8))
    if model.metadata is None:
        model.metadata = []
    model.metadata.append(entry)


def remove_entry(model, name):
    """Drop a named entry (its buffer goes with the next `prune`)."""
    if model.metadata:
        model.metadata = [m for m in model.metadata if _name(m) != name]


def entries(model):
    """name -> bytes of every metadata entry of a `ModelT`."""
    out = {}
    for entry in model.metadata or []:
        data = model.buffers[entry.buffer].data
        out[_name(entry)] = b"" if data is None else np.asarray(
            data, np.uint8).tobytes()
    return out


def _name(entry):
    name = entry.name
    return name.decode() if isinstance(name, bytes) else str(name)


def read_metadata(tflite_bytes):
    """The `hads_plan` JSON of a nested model as a dict.

    Raises:
        ValueError: when the bytes are not a TFLite model or carry no HADS
            plan (not written by `hads_keras.export.tflite_nested`).
    """
    found = entries(flatbuffer.load(tflite_bytes, "read_plan: the input"))
    if PLAN_KEY not in found:
        raise ValueError(
            f"This .tflite model has no '{PLAN_KEY}' metadata (entries: "
            f"{sorted(found) or 'none'}); it was not written by "
            "hads_keras.export.tflite_nested. Export the nested model with it.")
    return json.loads(found[PLAN_KEY].decode("utf-8"))


def read_plan(tflite_bytes):
    """The `Plan` stored in a nested `.tflite` model (with its costs)."""
    from hads_keras.plan import Plan
    return Plan.from_dict(read_metadata(tflite_bytes))


def read_labels(tflite_bytes):
    """The class labels stored in a `.tflite` model, or None."""
    found = entries(flatbuffer.load(tflite_bytes, "read_labels: the input"))
    if LABELS_KEY not in found:
        return None
    return found[LABELS_KEY].decode("utf-8").split("\n")
