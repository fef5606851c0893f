"""The latency probe: its CSV read back into a table (bad input refused),
and a tiny model measured on QEMU's Cortex-M4 (skips without the tools)."""

import io
import re
import shutil

import keras
import pytest

import hads_keras as hads
from hads_keras import cli, latency, latency_probe


def _model(filters=8):
    return hads.convert(keras.Sequential([
        keras.Input((6, 6, 2)),
        keras.layers.Conv2D(filters, 3, padding="same", name="conv"),
        keras.layers.DepthwiseConv2D(3, name="dw"),
        keras.layers.Conv2D(6, 1, name="pw"),
        keras.layers.GlobalAveragePooling2D(name="pool"),
        keras.layers.Dense(4, activation="softmax", name="head"),
    ], name="tiny"))


def _cost(layer, a, b):
    return 1000 * len(layer) + 10 * a * b + 7


def _csv(model, points=3, unit="cycles", model_line=None, edit=None):
    """What the probe prints for `model`, with costs from `_cost`."""
    ops, _ = latency_probe.operators(model)
    rows = [(ops[i].layer, a, b, _cost(ops[i].layer, a, b))
            for i, a, b in latency_probe.sweep_points(model, ops, points=points)]
    if edit:
        rows = edit(rows)
    line = model_line or (f"# hads-latency-probe version=1 model=tiny fingerprint="
                          f"{latency.model_fingerprint(model)} timer=dwt-cyccnt")
    body = "\n".join(",".join(map(str, r)) for r in rows)
    return f"boot noise\n{line}\nlayer,in_width,out_width,{unit}\n{body}\n# done\n"


def test_the_operators_and_their_active_widths():
    ops, untimed = latency_probe.operators(_model())
    assert [(o.layer, o.kind, o.in_group, o.out_group) for o in ops] == [
        ("conv", "conv2d", None, "conv"), ("dw", "depthwise", "conv", None),
        ("pw", "conv2d", "conv", "pw"), ("pool", "average_pool", None, None),
        ("head", "dense", "pw", None)]
    assert untimed == ["head (its softmax)"]
    widths = {"conv": 5, "pw": 2}
    assert [o.active(widths) for o in ops] == [(2, 5), (5, 5), (5, 2), (6, 6), (2, 4)]
    assert ops[1].spec["in_height"] == 6 and ops[2].spec["in_height"] == 4  # valid 3x3


def test_what_the_probe_cannot_time_is_refused_by_name():
    conv1d = hads.convert(keras.Sequential([
        keras.Input((10, 3)), keras.layers.Conv1D(4, 3, name="c1d"),
        keras.layers.Flatten(), keras.layers.Dense(2, name="out")]))
    with pytest.raises(ValueError, match="layer 'c1d' is a Conv1D"):
        latency_probe.operators(conv1d)
    with pytest.raises(ValueError, match="grid for unknown group 'nope'"):
        latency_probe.grid_points(_model(), grids={"nope": [1, 2]})


def test_a_board_csv_becomes_a_table_exact_at_the_grid():
    model = _model()
    table = latency_probe.read_csv(io.StringIO(_csv(model)), model, target="nano33ble")
    assert (table.target, table.unit) == ("nano33ble", "cycles")
    table.check_model(model)
    assert table.layers["pw"].groups == ("conv", "pw")
    assert table.layers["pw"].axes[0].tolist() == [1, 4, 8]
    # The pool runs all channels at every width: the constant.
    assert table.constant == _cost("pool", 6, 6)
    widths = {"conv": 4, "pw": 6}
    expected = (_cost("conv", 2, 4) + _cost("dw", 4, 4) + _cost("pw", 4, 6) +
                _cost("head", 6, 4) + _cost("pool", 6, 6))
    assert table.cost(widths) == expected
    assert table.source["not_timed"] == ["head (its softmax)"]


def test_bad_csvs_are_refused_with_the_reason():
    model = _model()

    def read(text):
        return latency_probe.read_csv(io.StringIO(text), model, target="nano33ble")

    with pytest.raises(ValueError, match="fingerprints differ.*hads latency header"):
        read(_csv(_model(filters=6)).replace("model=tiny", "model=other"))
    with pytest.raises(ValueError, match="fingerprints differ"):
        latency_probe.read_csv(io.StringIO(_csv(_model(filters=6))), model, target="b")
    with pytest.raises(ValueError, match="layer 'pw' has no measurement at in_width=4, "
                                         "out_width=4.*full grid"):
        read(_csv(model, edit=lambda rows: [r for r in rows if r[:3] != ("pw", 4, 4)]))
    with pytest.raises(ValueError, match="no measurement of layer 'dw'"):
        read(_csv(model, edit=lambda rows: [r for r in rows if r[0] != "dw"]))
    for bad in ("nan", "-5", "inf", "fast"):
        with pytest.raises(ValueError, match=r"row \d+ \(conv\)"):
            read(_csv(model, edit=lambda rows: [r[:3] + (bad,) if r[0] == "conv" else r
                                                for r in rows]))
    with pytest.raises(ValueError, match="cut short"):
        read(_csv(model).replace("# done\n", ""))
    with pytest.raises(ValueError, match="not the output of the latency probe"):
        read("layer,in_width,out_width,cycles\nconv,2,8,100\n")
    with pytest.raises(ValueError, match="unit one of"):
        read(_csv(model, unit="seconds"))
    with pytest.raises(ValueError, match="stopped with 'error layer=pw"):
        read(_csv(model).replace("# done", "# error layer=pw status=bad shape\n# done"))
    with pytest.raises(ValueError, match="layer 'ghost' is not a timed operator"):
        read(_csv(model, edit=lambda rows: rows + [("ghost", 1, 1, 5)]))


def test_hads_latency_import_writes_the_table_and_refuses_a_bad_csv(tmp_path, capsys):
    model = _model()
    model.save(tmp_path / "m.keras")
    (tmp_path / "board.csv").write_text(_csv(model))
    out = tmp_path / "t.json"
    assert cli.main(["latency", "import", str(tmp_path / "board.csv"), "--model",
                     str(tmp_path / "m.keras"), "--target", "nano33ble",
                     "--out", str(out)]) == 0
    assert latency.LatencyTable.load(out).cost({"conv": 8, "pw": 6}) > 0
    (tmp_path / "bad.csv").write_text(
        _csv(model, edit=lambda rows: [rows[0][:3] + ("nan",)] + rows[1:]))
    code = cli.main(["latency", "import", str(tmp_path / "bad.csv"), "--model",
                     str(tmp_path / "m.keras"), "--target", "nano33ble"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "bad.csv" in err[0] and "nan" in err[0]


def test_the_header_describes_the_operators_and_the_grid():
    model = _model()
    text = latency_probe.header_text(model, points=3, repeats=5, arduino=True)
    assert '#include "tflm_ops/hads_latency_probe.h"' in text
    assert "{1, 6, 6, 2, 3, 3, 8, 1, 1, 0, 1},  // conv" in text  # SAME
    assert "{2, 6, 6, 8, 3, 3, 8, 1, 1, 1, 1},  // dw" in text    # VALID
    ops, _ = latency_probe.operators(model)
    assert len(re.findall(r"^    \{2, \d+, \d+\},$", text, re.MULTILINE)) == 9  # pw: 3 x 3
    assert f"kPoints, {len(latency_probe.sweep_points(model, ops, points=3))}," in text
    with pytest.raises(ValueError, match="repeats must be 1..15"):
        latency_probe.header_text(model, repeats=0)
    with pytest.raises(ValueError, match="subnetwork 0 lacks the widths of groups"):
        latency_probe.header_text(model, subnetworks=[{"conv": 4}])


def test_hads_latency_header_and_qemu_from_the_command_line(tmp_path, capsys, monkeypatch):
    _model().save(tmp_path / "m.keras")
    header = tmp_path / "probe.h"
    assert cli.main(["latency", "header", str(tmp_path / "m.keras"), "--points", "3",
                     "--out", str(header)]) == 0
    assert "hads_probe_model::kSweep" not in header.read_text()  # defined, not used
    assert "const hads::probe::Sweep kSweep" in header.read_text()
    code = cli.main(["latency", "header", str(tmp_path / "m.keras"), "--points", "1"])
    assert code == 2 and "--points 1" in capsys.readouterr().err
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    code = cli.main(["latency", "qemu", str(tmp_path / "m.keras"), "--out",
                     str(tmp_path / "t.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "qemu-system-arm" in err[0]


needs_qemu = pytest.mark.skipif(
    any(shutil.which(t) is None for t in latency_probe.TOOLS),
    reason="needs arm-none-eabi-gcc and qemu-system-arm (" + latency_probe.INSTALL_HINT + ")")


@needs_qemu
def test_a_qemu_table_adds_up_to_the_measured_subnetwork(tmp_path):
    model = _model()
    table = latency_probe.measure_qemu(model, points=3)
    assert (table.target, table.unit) == ("cortex-m4-qemu", "instructions")
    grid = [{"conv": 8, "pw": 6}, {"conv": 4, "pw": 4}, {"conv": 1, "pw": 1}]
    measured = latency_probe.measure_subnetworks_qemu(model, grid)
    ops, _ = latency_probe.operators(model)
    for widths, whole in zip(grid, measured):
        # At grid points the table is what the probe measured, operator by
        # operator; one timer read per operator, 40 instructions per tick.
        assert abs(table.cost(widths) - whole) <= 40 * (len(ops) + 1), (widths, whole)
    assert measured[0] > measured[1] > measured[2] > 0
    with pytest.raises(ValueError, match="fingerprints differ"):
        table.check_model(_model(filters=6))


def test_missing_tools_are_named(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(latency_probe.ProbeError, match="qemu-system-arm.*apt-get install"):
        latency_probe.run_qemu("// header")
