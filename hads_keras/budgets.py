"""Budgets given on a command line (`hads demo`, the examples) and the
latency they are measured in.

    targets = budgets.parse_targets("1,0.75,0.5", "--latency_targets")
    limit = budgets.parse_bytes("48KiB", "--memory_limit")       # 49152
    table = budgets.latency_table(model, "auto")   # QEMU's Cortex-M4 if installed, else host
    latencies, how = budgets.subnetwork_latencies(model, table, plans, nested)

A latency source is a table file (`hads latency ...` writes them) or the
name of a target measured on the spot: "qemu" (the latency probe on QEMU's
Cortex-M4, instructions, deterministic), "host" (this machine in LiteRT,
microseconds, medians) or "auto" (QEMU when its tools are installed, else
the host). Subnetworks are measured afterwards on the same target as the
table: on QEMU with the probe, on the host as each subnetwork's own int8
model; a table from a board (`hads latency import`) cannot be re-measured
here, so its subnetworks' latency is what the table predicts, and says so.
"""

import os
import re

SOURCES = ("auto", "qemu", "host")
# With a latency table, plans use widths in multiples of 4 (or full) and the
# table measures 9 of them per group: the Cortex-M DSP kernels take 4
# channels a step, so an unaligned width costs a few % more than
# interpolating its aligned neighbours predicts.
LATENCY_MULTIPLE_OF = 4
LATENCY_POINTS = 9

_BYTES = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([kKmM]i?[bB]?|[bB])?\s*$")
_FACTORS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024,
            "m": 1000 ** 2, "mb": 1000 ** 2, "mib": 1024 ** 2, "mi": 1024 ** 2}


def parse_targets(text, flag):
    """'1,0.75,0.5' -> [1.0, 0.75, 0.5]; entries with a unit ('20ms',
    '1.5e6 instructions') stay strings for `hads_keras.solve` to read."""
    items = [item.strip() for item in str(text).split(",")]
    if not items or any(not item for item in items):
        raise ValueError(f"{flag} {text!r}: give comma-separated budgets, e.g. "
                         "1,0.75,0.5,0.25 (fractions of the full network).")
    out = []
    for item in items:
        try:
            out.append(float(item))
        except ValueError:
            if not re.match(r"^[-+0-9.eE]+\s*[A-Za-zµ]+$", item):
                raise ValueError(
                    f"{flag} {text!r}: '{item}' is neither a number nor a number "
                    "with a unit such as 20ms or 1.5e6instructions.") from None
            out.append(item)
    return out


def parse_bytes(text, flag):
    """'49152', '48KiB' (x 1024), '48kB' / '48k' (x 1000), '1MiB' -> bytes."""
    match = _BYTES.match(str(text))
    if not match:
        raise ValueError(f"{flag} {text!r}: give bytes, e.g. 49152, 48KiB (x 1024) "
                         "or 48kB (x 1000).")
    value = float(match.group(1)) * _FACTORS[(match.group(2) or "").lower()]
    if value < 2:
        raise ValueError(f"{flag} {text!r} is {value:g} B; give the activation "
                         "memory the board has for the arena, e.g. 48KiB.")
    return int(round(value))


def add_arguments(parser):
    """The budget options of an argparse command (`hads demo`); both
    spellings, --latency-targets and --latency_targets, are accepted."""
    parser.add_argument("--mac-targets", "--mac_targets", dest="mac_targets",
                        metavar="LIST",
                        help="MAC budgets, fractions of the full network "
                             "(default 1,0.75,0.5,0.25 unless latency targets "
                             "are given); a list below 1 (0.6,0.3) makes the "
                             "first budget's subnetwork the largest after the "
                             "full one")
    parser.add_argument("--latency-targets", "--latency_targets",
                        dest="latency_targets", metavar="LIST",
                        help="latency budgets: fractions of the full latency "
                             "(1,0.75,0.5,0.25) or numbers with a unit "
                             "(20ms,10ms on a table in us), measured in "
                             "--latency-table")
    parser.add_argument("--latency-table", "--latency_table", dest="latency_table",
                        metavar="FILE|auto|qemu|host",
                        help="a latency table file (`hads latency ...`), or "
                             "measure one now: qemu (Cortex-M4 on QEMU, "
                             "instructions), host (LiteRT here, us), auto "
                             "(qemu if installed, else host; the default with "
                             "--latency-targets). With a table every "
                             "subnetwork's latency is measured afterwards and "
                             "plotted")
    parser.add_argument("--memory-limit", "--memory_limit", dest="memory_limit",
                        metavar="BYTES",
                        help="activation memory every subnetwork must fit, in "
                             "bytes (49152, 48KiB, 48kB); a full network above "
                             "it makes the largest subnetwork smaller")


def from_arguments(args):
    """The budgets of `add_arguments`' options, parsed: keyword arguments of
    `hads_keras.demo.run` (None where not given)."""
    macs = None if args.mac_targets is None else parse_targets(args.mac_targets,
                                                                 "--mac-targets")
    if macs and any(isinstance(t, str) for t in macs):
        raise ValueError(f"--mac-targets {args.mac_targets!r}: MAC budgets are "
                         "fractions of the full network, e.g. 1,0.75,0.5,0.25.")
    return {
        "mac_targets": macs,
        "latency_targets": (None if args.latency_targets is None
                            else parse_targets(args.latency_targets, "--latency-targets")),
        "latency_table": args.latency_table,
        "memory_limit": (None if args.memory_limit is None
                         else parse_bytes(args.memory_limit, "--memory-limit")),
    }


def latency_table(model, source="auto", *, points=5, multiple_of=1, log=None):
    """The latency table of `model`: read from a file, or measured now.

    Args:
        model: the trained model (its full network is measured).
        source: a table file, or "qemu", "host", "auto" (see the module).
        points, multiple_of: the width grid of a measured table.
        log: optional callable for a progress line.
    """
    from hads_keras import latency, latency_probe

    if source not in SOURCES:
        if not os.path.isfile(str(source)):
            raise FileNotFoundError(
                f"latency table '{source}' does not exist; give a table file "
                "written by `hads latency ...`, or one of "
                f"{', '.join(SOURCES)} to measure one now.")
        table = latency.LatencyTable.load(source)
        table.check_model(model)
        return table
    if source == "auto":
        source = "qemu" if _qemu_available() else "host"
    log = log or (lambda *a: None)
    if source == "qemu":
        latency_probe.require_tools()
        log(f"      measuring a latency table on QEMU's Cortex-M4 ({points} widths "
            "per group)")
        minimum = max(1, multiple_of)
        return latency_probe.measure_qemu(model, points=points, minimum=minimum,
                                          multiple_of=multiple_of)
    from hads_keras import latency_host
    log(f"      measuring a latency table on this host in LiteRT ({points} widths "
        "per group)")
    return latency_host.host_table(model, points=points)


def _qemu_available():
    from hads_keras import latency_probe
    try:
        latency_probe.require_tools()
    except latency_probe.ProbeError:
        return False
    return True


def subnetwork_latencies(model, table, plans, nested=None):
    """Latency of every subnetwork of every plan, measured afterwards on the
    table's target where this machine can.

    Args:
        model: the model the plans were solved for (its full widths).
        table: the `LatencyTable` the budgets were read in.
        plans: mapping label -> `Plan`.
        nested: mapping label -> the plan's `NestedModel` (needed on the
            host, where each subnetwork's own int8 model is timed).

    Returns:
        ({label: [latency per subnetwork]}, how): `how` says where the
        numbers come from, for tables and plot labels.
    """
    from hads_keras import latency_host, latency_probe

    widths = {label: [plan.subnetwork_widths(k) for k in range(plan.num_subnetworks)]
              for label, plan in plans.items()}
    if table.target == latency_probe.QEMU_TARGET and _qemu_available():
        every = [w for label in plans for w in widths[label]]
        measured = latency_probe.measure_subnetworks_qemu(model, every)
        out, start = {}, 0
        for label in plans:
            out[label] = [float(v) for v in measured[start:start + len(widths[label])]]
            start += len(widths[label])
        return out, "measured on QEMU's Cortex-M4"
    if table.target == latency_host.TARGET:
        if nested is None or set(nested) != set(plans):
            raise ValueError("subnetwork_latencies: a host table needs the nested "
                             "model of every plan (nested=).")
        return ({label: latency_host.subnetwork_latencies(nested[label])["us"]
                 for label in plans}, "measured on this host (LiteRT)")
    return ({label: [float(table.cost(w)) for w in widths[label]] for label in plans},
            f"predicted by the '{table.target}' table")


def target_labels(plan):
    """What each subnetwork of a solved plan was budgeted for: 'full' for
    the full network put in front, else its budgets ('75 % MACs', ...)."""
    targets = plan.info.get("targets", {})
    count = plan.num_subnetworks
    lengths = [len(v) for v in targets.values()]
    first = count - (lengths[0] if lengths else count)
    labels = []
    for k in range(count):
        if k < first:
            labels.append("full")
            continue
        parts = []
        for resource, values in targets.items():
            value = values[k - first]
            if resource == "memory":
                parts.append(f"<= {value:,.0f} B")
            elif value <= 1:
                parts.append(f"{100 * value:.0f} % {_resource_name(resource)}")
            else:
                parts.append(f"{value:,.0f} {_resource_name(resource)}")
        labels.append(", ".join(parts))
    return labels


def _resource_name(resource):
    return {"macs": "MACs", "params": "params", "latency": "latency"}.get(resource, resource)
