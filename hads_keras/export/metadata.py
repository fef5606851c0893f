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
