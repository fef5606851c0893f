"""Latency tables measured by running the HADS kernels: Cortex-M4 on QEMU, or a board.

The probe (tflm_ops/hads_latency_probe.cc) times one model's operators,
each on full-size buffers at a grid of active widths, and prints a CSV.
This module writes the C header that describes the model and the grid,
builds and runs the probe on QEMU's Cortex-M4 board (instructions, exact),
and reads a probe CSV (from QEMU or from the Arduino example
arduino/examples/LatencyTable, cycles) back into a `LatencyTable`:

    table = measure_qemu(model, points=5)          # "cortex-m4-qemu", instructions
    table.save("ds_cnn_s.cortex-m4-qemu.json")
    write_header(model, "LatencyTable/hads_probe_model.h")   # for the board
    table = read_csv("board.csv", model, target="nano33ble")  # cycles

What is timed: every Dense / Conv2D / DepthwiseConv2D (batch normalization
and ReLU are folded into them on export) on the HADS int8 kernels of the
target, and every average pooling (a builtin operator over all channels:
part of the table's constant, as are layers whose groups are all fixed).
Operators without arithmetic worth timing (reshape, flatten, softmax of a
few classes, ...) are not timed; the table's source lists them.

Needs Debian's gcc-arm-none-eabi, libnewlib-arm-none-eabi,
libstdc++-arm-none-eabi-newlib and qemu-system-arm for `measure_qemu`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import pathlib
import shutil
import subprocess
import tempfile

from hads_keras import latency

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TFLM_OPS = REPO_ROOT / "tflm_ops"
# The bare-metal QEMU harness of the Cortex-M4 benchmarks (startup, linker
# script, semihosting, timer), used as it is.
HARNESS = REPO_ROOT / "benchmarks" / "cortex_m4"
QEMU_MAIN = REPO_ROOT / "benchmarks" / "latency_probe" / "qemu_main.cc"
PROBE_SOURCES = [TFLM_OPS / "hads_latency_probe.cc", TFLM_OPS / "hads_kernels.cc",
                 TFLM_OPS / "hads_kernels_dsp.cc"]
QEMU_TARGET = "cortex-m4-qemu"
CPU_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm")
INSTALL_HINT = ("apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                "libstdc++-arm-none-eabi-newlib qemu-system-arm")
CSV_MAGIC = "# hads-latency-probe"
CSV_UNITS = ("instructions", "cycles", "us")
SUBNETWORK_ROW = "<subnetwork "
# The probe's OperatorKind values.
KINDS = {"dense": 0, "conv2d": 1, "depthwise": 2, "average_pool": 3}
# Layers the probe does not time: no arithmetic on the device (reshapes,
# folded into a neighbour: BN, activations, dropout).
_UNTIMED_FREE = ("InputLayer", "Flatten", "Reshape", "Dropout", "ReLU", "Activation",
                 "BatchNormalization", "SpatialDropout2D", "GaussianNoise")


class ProbeError(RuntimeError):
    """The probe could not be built or run (tools missing, a kernel refused)."""


@dataclasses.dataclass(frozen=True)
class ProbeOperator:
    """One timed operator of a model.

    `spec` holds the OperatorSpec fields (full sizes). `in_group` /
    `out_group` are the sliced groups its active input / output channels
    follow (None: fixed at the full size), `in_multiplier` channels per unit
    of the input group.
    """

    layer: str
    kind: str
    spec: dict
    in_group: str | None
    out_group: str | None
    in_multiplier: int = 1

    def active(self, widths):
        """Active (input, output) channels of the kernel at group `widths`."""
        full_in, full_out = self.spec["in_channels"], self.spec["out_channels"]
        if self.kind == "average_pool":
            return full_in, full_in
        active_in = widths[self.in_group] * self.in_multiplier if self.in_group else full_in
        if self.kind == "depthwise":
            return active_in, active_in * self.spec["depth_multiplier"]
        return active_in, widths[self.out_group] if self.out_group else full_out


def _spec(kind, in_hwc, filter_hw=(1, 1), out_channels=None, strides=(1, 1),
          padding="valid", depth_multiplier=1):
    h, w, c = (int(v) for v in in_hwc)
    return {"kind": KINDS[kind], "in_height": h, "in_width": w, "in_channels": c,
            "filter_height": int(filter_hw[0]), "filter_width": int(filter_hw[1]),
            "out_channels": int(out_channels if out_channels is not None else c),
            "stride_height": int(strides[0]), "stride_width": int(strides[1]),
            "padding": 0 if padding == "same" else 1,
            "depth_multiplier": int(depth_multiplier)}


def _check_2d(layer, what):
    if tuple(getattr(layer, "dilation_rate", (1, 1))) != (1, 1):
        raise ValueError(f"Latency probe: layer '{layer.name}' has a dilation; the "
                         f"HADS {what} kernel runs dilation 1 only.")
    if getattr(layer, "padding", "valid") not in ("same", "valid"):
        raise ValueError(f"Latency probe: layer '{layer.name}' has padding "
                         f"'{layer.padding}'; the kernels take 'same' or 'valid'.")


def operators(model):
    """`(operators, untimed)`: the model's timed operators in network order,
    and the names of layers the probe does not time (see module docstring)."""
    import keras

    network = latency._network(model)
    analysis = latency._analysis(model)
    sliced = {g.name for g in analysis.groups if not g.fixed}
    out, untimed = [], []
    for layer in network.layers:
        wiring = analysis.wiring.get(layer.name)
        kind = wiring.kind if wiring else None
        in_group = wiring.in_group if wiring and wiring.in_group in sliced else None
        out_group = wiring.out_group if wiring and wiring.out_group in sliced else None
        mult = wiring.in_multiplier if wiring else 1
        if kind == "dense":
            features = int(layer.input.shape[-1])
            positions = math.prod(int(d) for d in layer.input.shape[1:-1])
            spatial = wiring.in_spatial
            spec = _spec("dense", (positions, spatial, features // spatial), out_channels=layer.units)
        elif kind == "conv2d":
            _check_2d(layer, "convolution")
            if getattr(layer, "groups", 1) != 1:
                raise ValueError(f"Latency probe: layer '{layer.name}' is a grouped "
                                 "convolution; the HADS kernels run groups=1.")
            spec = _spec("conv2d", layer.input.shape[1:], layer.kernel_size, layer.filters,
                         layer.strides, layer.padding)
        elif kind == "depthwise":
            _check_2d(layer, "depthwise")
            c = int(layer.input.shape[-1])
            spec = _spec("depthwise", layer.input.shape[1:], layer.kernel_size,
                         c * layer.depth_multiplier, layer.strides, layer.padding,
                         layer.depth_multiplier)
        elif kind in ("conv1d",):
            raise ValueError(f"Latency probe: layer '{layer.name}' is a Conv1D; the probe "
                             "times Dense, Conv2D and DepthwiseConv2D layers only.")
        elif isinstance(layer, (keras.layers.GlobalAveragePooling2D,)):
            spec = _spec("average_pool", layer.input.shape[1:])
            kind = "average_pool"
        else:
            if type(layer).__name__ not in _UNTIMED_FREE and kind != "batchnorm":
                untimed.append(layer.name)
            continue
        out.append(ProbeOperator(layer.name, kind, spec, in_group, out_group, mult))
        if getattr(getattr(layer, "activation", None), "__name__", "") == "softmax":
            untimed.append(f"{layer.name} (its softmax)")
    return out, untimed


def grid_points(model, grids=None, points=5, minimum=1, multiple_of=1):
    """`(requested, grids)`: {layer: list of group-width tuples}, the points
    a table measures in the order `latency.build_table` walks them, and the
    widths per group (`grids`: group -> widths overrides the default)."""
    analysis = latency._analysis(model)
    full = {g.name: g.width for g in analysis.groups}
    grids = dict(grids or {})
    for group, widths in grids.items():
        if group not in full:
            raise ValueError(f"Latency probe: grid for unknown group '{group}'; the "
                             f"model's groups are {sorted(full)}.")
    for layer, groups in latency.latency_layers(model):
        for g in groups:
            grids.setdefault(g, latency.grid_widths(full[g], points, min(minimum, full[g]),
                                                    multiple_of))
    requested = {}

    def record(layer, widths):
        requested.setdefault(layer, []).append(widths)
        return 0.0

    latency.build_table(model, "grid", "instructions", record, grids=grids)
    return requested, grids


def sweep_points(model, ops, grids=None, points=5, minimum=1, multiple_of=1):
    """The probe's grid: (operator index, active in, active out) per point,
    for `ops` = `operators(model)[0]`."""
    requested, _ = grid_points(model, grids, points, minimum, multiple_of)
    layer_groups = dict(latency.latency_layers(model))
    full = latency._full_widths(model)
    out = []
    for index, op in enumerate(ops):
        combos = requested.get(op.layer)
        if combos is None:  # fixed widths: one point at full size
            out.append((index, *op.active(full)))
            continue
        for combo in combos:
            widths = dict(full, **dict(zip(layer_groups[op.layer], combo)))
            out.append((index, *op.active(widths)))
    return out


def _c_string(text):
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def header_text(model, *, grids=None, points=5, minimum=1, multiple_of=1,
                subnetworks=(), grid=True, repeats=1, arduino=False):
    """The C++ header that describes `model` to the probe: operators, the
    grid points (unless `grid=False`) and optional whole subnetworks (list
    of {group: width}). `arduino=True` includes the library's copy of the
    probe."""
    ops, _ = operators(model)
    if not ops:
        raise ValueError("Latency probe: the model has no Dense, Conv2D, DepthwiseConv2D "
                         "or pooling layer to time.")
    if not 1 <= repeats <= 15:
        raise ValueError(f"Latency probe: repeats must be 1..15, got {repeats}.")
    sweep = sweep_points(model, ops, grids, points, minimum, multiple_of) if grid else []
    analysis = latency._analysis(model)
    full = {g.name: g.width for g in analysis.groups}
    sliced = {g.name for g in analysis.groups if not g.fixed}
    chains = []
    for k, widths in enumerate(subnetworks):
        missing = sorted(sliced - set(widths))
        if missing:
            raise ValueError(f"Latency probe: subnetwork {k} lacks the widths of groups "
                             f"{missing}.")
        merged = dict(full, **{g: int(w) for g, w in widths.items()})
        chains.append([v for op in ops for v in op.active(merged)])
    fields = list(ops[0].spec)
    lines = [
        "// Generated by hads_keras.latency_probe (`hads latency header`): the",
        "// operators of one model and the widths to time them at. Do not edit.",
        "#pragma once",
        '#include "tflm_ops/hads_latency_probe.h"' if arduino else
        '#include "hads_latency_probe.h"',
        "",
        f"#define HADS_PROBE_ARENA_BYTES {arena_estimate(ops, bool(chains))}",
        "",
        "namespace hads_probe_model {",
        f"// OperatorSpec fields: {', '.join(fields)}",
        "const hads::probe::OperatorSpec kOperators[] = {",
        *[f"    {{{', '.join(str(op.spec[f]) for f in fields)}}},  // {op.layer}" for op in ops],
        "};",
        "const char* const kNames[] = {" + ", ".join(_c_string(op.layer) for op in ops) + "};",
    ]
    if sweep:
        lines += ["const hads::probe::GridPoint kPoints[] = {",
                  *[f"    {{{i}, {a}, {b}}}," for i, a, b in sweep], "};"]
    if chains:
        lines += ["const int32_t kChains[] = {",
                  *[f"    {', '.join(map(str, row))}," for row in chains], "};"]
    network = latency._network(model)
    lines += [
        "const hads::probe::Sweep kSweep = {",
        f"    {_c_string(network.name)}, {_c_string(latency.model_fingerprint(model))},",
        f"    kOperators, kNames, {len(ops)}, {'kPoints' if sweep else 'nullptr'}, {len(sweep)},",
        f"    {'kChains' if chains else 'nullptr'}, {len(chains)}, {int(repeats)}}};",
        "}  // namespace hads_probe_model", ""]
    return "\n".join(lines)


def arena_estimate(ops, with_chains):
    """An upper bound of hads::probe::SweepArenaBytes (the probe checks the
    exact figure and prints it when the arena is too small)."""
    def align(n):
        return (n + 7) // 8 * 8

    single, own, activation = 0, 0, 0
    for op in ops:
        s = op.spec
        image = s["in_height"] * s["in_width"] * s["in_channels"]
        taps = s["filter_height"] * s["filter_width"]
        if op.kind == "dense":
            output, weights = s["in_height"] * s["out_channels"], image * s["out_channels"] // s["in_height"]
        elif op.kind == "average_pool":
            output, weights = s["in_channels"], 0
        else:
            oh = -(-s["in_height"] // s["stride_height"])  # SAME is the larger output
            ow = -(-s["in_width"] // s["stride_width"])
            output = oh * ow * s["out_channels"]
            weights = taps * s["out_channels"] * (s["in_channels"] if op.kind == "conv2d" else 1)
        scratch = 5 * (2 * taps * s["in_channels"] + 8) if op.kind == "conv2d" else 0
        mine = align(weights) + 3 * align(4 * s["out_channels"]) + align(scratch) + 64
        single = max(single, mine + align(image) + align(output))
        own += mine
        activation = max(activation, align(max(image, output)))
    # + one hads::probe::Prepared (under 128 bytes) per operator
    chained = own + 2 * activation + 128 * len(ops) if with_chains else 0
    return max(single, chained)


def write_header(model, path, **options):
    """Writes `header_text(model, **options)` to `path`."""
    path = pathlib.Path(path)
    path.write_text(header_text(model, **options))
    return path


# -- running on QEMU ----------------------------------------------------------

def require_tools():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise ProbeError(f"Latency probe on QEMU needs {', '.join(missing)}, which "
                         f"{'is' if len(missing) == 1 else 'are'} not installed: "
                         f"{INSTALL_HINT}")


def _compile(source, obj, flags):
    tool = "arm-none-eabi-gcc" if source.suffix == ".c" else "arm-none-eabi-g++"
    extra = [] if source.suffix == ".c" else ["-std=c++17", "-fno-exceptions", "-fno-rtti",
                                              "-fno-threadsafe-statics"]
    proc = subprocess.run([tool, *flags, *extra, "-c", str(source), "-o", str(obj)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise ProbeError(f"Latency probe: compiling {source.name} failed:\n{proc.stderr[-3000:]}")
    return obj


def run_qemu(header, opt="-Os", timeout=1800, work_dir=None):
    """Builds the probe for `header` (text) and runs it on QEMU mps2-an386;
    returns its CSV output."""
    require_tools()
    with tempfile.TemporaryDirectory(prefix="hads_probe_") as tmp:
        build = pathlib.Path(work_dir or tmp)
        build.mkdir(parents=True, exist_ok=True)
        (build / "hads_probe_model.h").write_text(header)
        flags = CPU_FLAGS + [opt, "-ffunction-sections", "-fdata-sections", "-Wall",
                             "-Wextra", "-Werror", f"-I{build}", f"-I{HARNESS}", f"-I{TFLM_OPS}"]
        sources = [HARNESS / "startup.c", HARNESS / "semihost.c", QEMU_MAIN, *PROBE_SOURCES]
        objects = [str(_compile(s, build / (s.stem + ".o"), flags)) for s in sources]
        elf = build / "probe.elf"
        proc = subprocess.run(["arm-none-eabi-g++", *CPU_FLAGS, "-T",
                               str(HARNESS / "mps2_an386.ld"), "-nostartfiles",
                               "--specs=nano.specs", "-Wl,--gc-sections", *objects,
                               "-o", str(elf)], capture_output=True, text=True)
        if proc.returncode:
            raise ProbeError(f"Latency probe: linking failed:\n{proc.stderr[-3000:]}")
        try:
            proc = subprocess.run(
                ["qemu-system-arm", "-M", "mps2-an386", "-semihosting", "-icount",
                 "shift=0,sleep=off", "-nographic", "-monitor", "none", "-kernel", str(elf)],
                capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ProbeError(f"Latency probe: QEMU did not finish in {timeout} s; "
                             "measure fewer grid points.") from None
    output = proc.stdout + proc.stderr  # the semihosting console is stderr
    if proc.returncode != 0 or "# done" not in output:
        raise ProbeError(f"Latency probe: the program failed on QEMU (exit "
                         f"{proc.returncode}):\n{output[-3000:]}")
    return output


def measure_qemu(model, *, grids=None, points=5, minimum=1, multiple_of=1, opt="-Os",
                 work_dir=None):
    """A `LatencyTable` of `model` on the Cortex-M4 (QEMU, instructions)."""
    header = header_text(model, grids=grids, points=points, minimum=minimum,
                         multiple_of=multiple_of)
    output = run_qemu(header, opt=opt, work_dir=work_dir)
    source = {"tool": "hads_keras.latency_probe.measure_qemu", "opt": opt,
              "compiler_flags": CPU_FLAGS, "platform":
              "qemu-system-arm -M mps2-an386 -icount shift=0 (Cortex-M4F), DSP kernels"}
    return read_csv(io.StringIO(output), model, target=QEMU_TARGET, source=source)


def measure_subnetworks_qemu(model, subnetworks, opt="-Os", work_dir=None):
    """Instructions of whole subnetworks on QEMU: every timed operator back to
    back at each subnetwork's widths ({group: width}), one count each."""
    header = header_text(model, subnetworks=list(subnetworks), grid=False)
    result = parse_csv(io.StringIO(run_qemu(header, opt=opt, work_dir=work_dir)),
                       model, where="QEMU probe output")
    return result.subnetworks


# -- reading the CSV ----------------------------------------------------------

@dataclasses.dataclass
class ProbeResult:
    unit: str
    timer: str
    points: dict      # (layer, active_in, active_out) -> cost
    subnetworks: list  # cost of each <subnetwork k> row, in order


def parse_csv(file, model, where="latency CSV"):
    """Reads a probe CSV (file path or text stream) for `model`.

    Raises ValueError naming `where` and the line for a CSV that is not
    the probe's, was made for another model, is cut short, or holds a
    negative, NaN or non-numeric cost.
    """
    if isinstance(file, (str, pathlib.Path)):
        path = pathlib.Path(file)
        where = f"latency CSV '{path}'"
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise FileNotFoundError(f"{where} does not exist.") from None
    else:
        text = file.read()
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(CSV_MAGIC)), None)
    if start is None:
        raise ValueError(f"{where}: no '{CSV_MAGIC}' line; it is not the output of the "
                         "latency probe (arduino/examples/LatencyTable).")
    meta = dict(kv.split("=", 1) for kv in lines[start].split()[2:] if "=" in kv)
    fingerprint = latency.model_fingerprint(model)
    if meta.get("fingerprint") != fingerprint:
        raise ValueError(
            f"{where} was measured for model '{meta.get('model')}' with other layers or "
            f"shapes than this model ('{latency._network(model).name}'): the fingerprints "
            "differ. Generate the probe header for this model (`hads latency header`) "
            "and measure again.")
    body = lines[start + 1:]
    errors = [line for line in body if line.startswith("# error")]
    if errors:
        raise ValueError(f"{where}: the probe stopped with '{errors[0][2:]}'.")
    if "# done" not in body:
        raise ValueError(f"{where} is cut short (no '# done' line): copy the whole "
                         "output of the probe.")
    rows = list(csv.reader(line for line in body[:body.index("# done")]
                           if line.strip() and not line.startswith("#")))
    if not rows or rows[0][:3] != ["layer", "in_width", "out_width"] or len(rows[0]) != 4 \
            or rows[0][3] not in CSV_UNITS:
        raise ValueError(f"{where}: the first row must be 'layer,in_width,out_width,<unit>' "
                         f"with unit one of {CSV_UNITS}, got {','.join(rows[0]) if rows else 'nothing'}.")
    unit = rows[0][3]
    points, subnetworks = {}, []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 4:
            raise ValueError(f"{where}, row {number}: expected 4 fields, got {row}.")
        try:
            active_in, active_out, cost = int(row[1]), int(row[2]), float(row[3])
        except ValueError:
            raise ValueError(f"{where}, row {number} ({row[0]}): widths must be integers "
                             f"and the cost a number, got {row[1:]}.") from None
        if not math.isfinite(cost) or cost < 0:
            raise ValueError(f"{where}, row {number} ({row[0]}): cost {row[3]} is not a "
                             "finite number >= 0.")
        if row[0].startswith(SUBNETWORK_ROW):
            subnetworks.append(cost)
        else:
            points[(row[0], active_in, active_out)] = cost
    return ProbeResult(unit, meta.get("timer", ""), points, subnetworks)


def read_csv(file, model, *, target, source=None, where="latency CSV"):
    """A `LatencyTable` from a probe CSV (see `parse_csv`).

    Every sliced layer needs its full grid (every combination of the input
    and output widths it was measured at); the operators with fixed widths
    and the average poolings make the constant.
    """
    result = parse_csv(file, model, where)
    if isinstance(file, (str, pathlib.Path)):
        where = f"latency CSV '{file}'"
    ops, untimed = operators(model)
    by_layer = {op.layer: op for op in ops}
    layer_groups = dict(latency.latency_layers(model))
    measured = {}
    for (layer, a, b), cost in result.points.items():
        if layer not in by_layer:
            raise ValueError(f"{where}: layer '{layer}' is not a timed operator of the model.")
        measured.setdefault(layer, {})[(a, b)] = cost
    constant, layers = 0.0, []
    full = latency._full_widths(model)
    for op in ops:
        points = measured.get(op.layer)
        if not points:
            raise ValueError(f"{where}: no measurement of layer '{op.layer}'; measure "
                             "with a probe header generated for this model.")
        groups = layer_groups.get(op.layer, ())
        if not groups:
            key = op.active(full)
            if key not in points:
                raise ValueError(f"{where}: layer '{op.layer}' has no measurement at its "
                                 f"full widths {key}.")
            constant += points[key]
            continue
        layers.append(_layer_entry(op, groups, points, where))
    source = dict(source or {}, timer=result.timer, not_timed=untimed)
    network = latency._network(model)
    return latency.LatencyTable(
        target, result.unit,
        {"name": network.name, "fingerprint": latency.model_fingerprint(model)},
        layers, constant, source)


def _layer_entry(op, groups, points, where):
    """One table entry: the measured points as a full grid of group widths."""
    axes = []
    for group in groups:
        if group == op.in_group:
            axis = sorted({a // op.in_multiplier for a, _ in points})
        else:
            axis = sorted({b for _, b in points})
        axes.append(axis)
    cost = []
    for index in _grid(axes):
        widths = dict(zip(groups, index))
        key = op.active(widths)
        if key not in points:
            raise ValueError(
                f"{where}: layer '{op.layer}' has no measurement at in_width={key[0]}, "
                f"out_width={key[1]}; every combination of its measured widths is needed "
                "(a full grid).")
        cost.append(points[key])
    shape = [len(a) for a in axes]
    values = _reshape(cost, shape)
    return {"layer": op.layer, "groups": list(groups), "widths": axes, "cost": values}


def _grid(axes):
    if len(axes) == 1:
        return [(a,) for a in axes[0]]
    return [(a, b) for a in axes[0] for b in axes[1]]


def _reshape(values, shape):
    if len(shape) == 1:
        return list(values)
    return [values[i * shape[1]:(i + 1) * shape[1]] for i in range(shape[0])]
