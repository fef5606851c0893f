"""The model's CRC-32 (`hads_crc32` metadata): written by the exporter,
checked by `hads_keras.export.metadata.verify_crc` and, on the device, by
tflm_ops/hads_integrity.cc (tests/native/test_hads_ops_tflm_integrity.py
runs the C++ check when a TFLite Micro tree is given).

A flipped byte in a weight buffer or in a HADS table is detected; the
unmodified model passes.
"""

import zlib

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from hads_keras.export import flatbuffer, metadata

import test_arduino_sketch as models


def _offsets(data):
    """(offset of a weight byte, offset of a HADS table byte) in `data`."""
    model = schema.Model.GetRootAs(data, 0)
    base = np.frombuffer(data, np.uint8).__array_interface__["data"][0]
    weights = max((model.Buffers(i) for i in range(model.BuffersLength())),
                  key=lambda b: b.DataLength()).DataAsNumpy()
    options = model.Subgraphs(0).Operators(0).CustomOptionsAsNumpy()
    assert options.size > 16
    return (weights.__array_interface__["data"][0] - base + weights.size // 2,
            options.__array_interface__["data"][0] - base + options.size // 3)


@pytest.fixture(scope="module")
def protected():
    return metadata.add_crc(models.build_nested_dnn())


def test_unmodified_model_passes_and_crc_is_zlibs(protected):
    assert metadata.verify_crc(protected)
    offset = metadata._crc_location(protected)
    stored = int.from_bytes(protected[offset:offset + 4], "little")
    zeroed = protected[:offset] + b"\0\0\0\0" + protected[offset + 4:]
    assert stored == zlib.crc32(zeroed)
    assert metadata.CRC_KEY in metadata.entries(flatbuffer.load(protected, "test"))


@pytest.mark.parametrize("where", ["weights", "table"])
def test_a_flipped_byte_is_detected(protected, where):
    weight_at, table_at = _offsets(protected)
    at = weight_at if where == "weights" else table_at
    for bit in (0, 7):
        corrupt = bytearray(protected)
        corrupt[at] ^= 1 << bit
        assert not metadata.verify_crc(bytes(corrupt)), (where, bit)


def test_a_model_without_crc_is_named():
    with pytest.raises(ValueError, match="hads_crc32"):
        metadata.verify_crc(models.build_nested_dnn())


def test_adding_twice_keeps_one_entry(protected):
    again = metadata.add_crc(protected)
    model = schema.Model.GetRootAs(again, 0)
    names = [model.Metadata(i).Name().decode() for i in range(model.MetadataLength())]
    assert names.count(metadata.CRC_KEY) == 1 and metadata.verify_crc(again)
