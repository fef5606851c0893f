"""The plan and class labels inside the `.tflite` file.

Both go into the model's own `metadata` list (named buffers, part of the
TFLite schema), so no `tflite-support` is needed: that package pins
protobuf < 4, which breaks TensorFlow 2.21 on install.

Entries (docs/nested_tflite_format.md):

* `hads_plan`: UTF-8 JSON; the `Plan` dict (groups and slicing points,
  `costs` per subnetwork: MACs and parameters, and `latency` when the plan
  was solved with a latency table or the exporter was given one, with its
  unit and target in `info.latency`: `subnetwork_latency`) plus
  `operators`, the per-subnetwork widths of each HADS operator.
* `hads_labels`: UTF-8, one class label per line (when given).
* `hads_materialized` (only in `materialize`d models): JSON
  `{"subnetwork": k, "num_subnetworks": S}`.
* `hads_crc32` (nested models): 4 bytes, little-endian, the CRC-32 (IEEE
  802.3, as `zlib.crc32`) of the whole `.tflite` file with these 4 bytes
  taken as zero. It covers the weights, the HADS tables, the tensors'
  quantization and shapes alike; the Arduino library checks it on request
  (`hads::verifyModel`, `NestedModel::beginVerified`). Written last by
  `add_crc`, checked by `verify_crc`.
"""

import json
import struct
import zlib

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from hads_keras.export import flatbuffer

PLAN_KEY = "hads_plan"
LABELS_KEY = "hads_labels"
MATERIALIZED_KEY = "hads_materialized"
CRC_KEY = "hads_crc32"


def subnetwork_latency(model, plan, latency_table=None):
    """Per-subnetwork latency for the `hads_plan` entry, or None.

    From `latency_table` (a `LatencyTable` or its file) evaluated at the
    plan's widths when given; else from the plan's own `costs[k]["latency"]`
    and `info["latency"]` (`hads_keras.solve(latency_targets=...)`).

    Returns:
        (list of costs, one per subnetwork, {"target": ..., "unit": ...,
        "source": "latency_table" | "plan"}) or None when neither has one.
    """
    if latency_table is not None:
        from hads_keras import graph as graph_lib
        from hads_keras import latency as latency_lib
        table = latency_table
        if not isinstance(table, latency_lib.LatencyTable):
            table = latency_lib.LatencyTable.load(table)
        table.check_model(model)
        widths = {g.name: g.width for g in graph_lib.analyze(
            latency_lib._network(model)).groups}
        values = []
        for k in range(plan.num_subnetworks):
            widths.update({g: plan.width(g, k) for g in plan.groups})
            values.append(table.cost(widths))
        return values, {"target": table.target, "unit": table.unit,
                        "source": "latency_table"}
    costs = plan.costs or []
    has = [isinstance(c, dict) and "latency" in c for c in costs]
    if not any(has):
        return None
    info = plan.info.get("latency")
    if not all(has) or not isinstance(info, dict) or \
            not {"target", "unit"} <= set(info):
        raise ValueError(
            "The plan's costs carry 'latency' for only some subnetworks or "
            "without info['latency'] = {'target', 'unit'}; solve it again with "
            "hads_keras.solve(latency_targets=..., latency_table=...) or pass "
            "latency_table= to the exporter.")
    return ([float(c["latency"]) for c in costs],
            {"target": info["target"], "unit": info["unit"], "source": "plan"})


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


def _crc_location(data):
    """Offset in `data` of the 4 bytes of the `hads_crc32` entry, or None."""
    model = schema.Model.GetRootAs(data, 0)
    base = np.frombuffer(data, np.uint8).__array_interface__["data"][0]
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() is None or entry.Name().decode() != CRC_KEY:
            continue
        buffer = model.Buffers(entry.Buffer())
        if buffer.DataLength() != 4:
            raise ValueError(f"metadata '{CRC_KEY}' holds {buffer.DataLength()} "
                             "bytes, not 4: the model is corrupt")
        return buffer.DataAsNumpy().__array_interface__["data"][0] - base
    return None


def _crc_with_zeroed(data, offset):
    return zlib.crc32(data[offset + 4:],
                      zlib.crc32(b"\0\0\0\0", zlib.crc32(data[:offset])))


def add_crc(tflite_bytes):
    """The model with a `hads_crc32` entry holding the CRC-32 of the file.

    Must be the last change to the model: any later byte change (a rewrite,
    a flipped bit in flash) makes `verify_crc` and the device's check fail.
    """
    model = flatbuffer.load(tflite_bytes, "add_crc: the model")
    set_entry(model, CRC_KEY, b"\0\0\0\0")
    data = bytearray(flatbuffer.save(model))
    offset = _crc_location(bytes(data))
    data[offset:offset + 4] = struct.pack("<I", _crc_with_zeroed(bytes(data), offset))
    return bytes(data)


def verify_crc(tflite_bytes):
    """True when the model's `hads_crc32` matches its bytes.

    Raises:
        ValueError: when the model has no `hads_crc32` entry.
    """
    data = bytes(tflite_bytes)
    offset = _crc_location(data)
    if offset is None:
        raise ValueError(f"the model has no '{CRC_KEY}' metadata: export it "
                         "with hads_keras.export.tflite_nested")
    stored = struct.unpack("<I", data[offset:offset + 4])[0]
    return stored == _crc_with_zeroed(data, offset)
