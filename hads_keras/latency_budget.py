"""Latency budgets for `hads_keras.solve`: a latency table's terms in the
knapsack problem, and latency targets read in the table's unit.

    plan = hads.solve(model, importance, latency_targets=[1.0, 0.5, 0.25],
                      latency_table="ds_cnn_s.cortex-m4-qemu.json")

Targets are fractions in (0, 1] of the full network's latency in the
table, absolute numbers in the table's unit, or strings with a unit:
"20ms", "150 us", "1.2e6 instructions". A time ("ms", "us", "s") needs a
table measured in microseconds; instructions and cycles are not
converted to time (that needs a clock and a cycles-per-instruction figure
HADS does not know), so "20ms" against a table in instructions is refused.
"""

import numbers
import os
import re

from hads_keras import latency as latency_lib

RESOURCE = latency_lib.RESOURCE
# Factors to microseconds, the one time unit a table may be measured in.
_TIME_UNITS = {"s": 1e6, "ms": 1e3, "us": 1.0, "µs": 1.0}
_COUNT_UNITS = {"instructions": "instructions", "instruction": "instructions",
                "instr": "instructions", "cycles": "cycles", "cycle": "cycles"}
_WITH_UNIT = re.compile(r"^\s*([-+0-9.eE]+)\s*([^\s0-9.+-][^\s]*)?\s*$")


def load_table(table):
    """A `LatencyTable` from itself or from a path to its JSON file."""
    if isinstance(table, latency_lib.LatencyTable):
        return table
    if isinstance(table, (str, os.PathLike)):
        return latency_lib.LatencyTable.load(table)
    raise TypeError(
        "latency_table must be a hads_keras.latency.LatencyTable or the path of "
        f"its JSON file, got {type(table).__name__}.")


def latency_budgets(values, table):
    """`latency_targets` as numbers `resolve_targets` reads: fractions stay,
    absolute budgets (numbers, or strings with a unit) in the table's unit."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(
            "latency_targets must be a list, e.g. [1.0, 0.5, 0.25] (fractions of "
            f"the full latency) or ['20ms', '10ms']; got {values!r}.")
    out = []
    for i, value in enumerate(values):
        where = f"latency_targets[{i}] = {value!r}"
        if isinstance(value, str):
            out.append(_with_unit(value, table, where))
        elif isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{where} is neither a number nor a string with a unit.")
        else:
            out.append(float(value))
    if not out:
        raise ValueError("latency_targets is empty; give at least one budget.")
    return out


def _with_unit(text, table, where):
    match = _WITH_UNIT.match(text)
    try:
        number = float(match.group(1)) if match else None
    except ValueError:
        number = None
    if number is None:
        raise ValueError(
            f"{where}: not a number with a unit, e.g. '20ms', '150us' or "
            f"'1.2e6 {table.unit}'.")
    unit = (match.group(2) or "").strip()
    if not unit:
        return number
    if unit in _TIME_UNITS and table.unit == "us":
        value = number * _TIME_UNITS[unit]
    elif _COUNT_UNITS.get(unit) == table.unit:
        value = number
    else:
        known = unit in _TIME_UNITS or unit in _COUNT_UNITS
        raise ValueError(
            f"{where} is in {unit}, but the latency table (target "
            f"'{table.target}') measures {table.unit}"
            + ("" if known else f" ('{unit}' is not a unit HADS knows)")
            + f"; give fractions of the full latency or absolute {table.unit} "
              f"(e.g. '{_example(table)}').")
    if value <= 1.0:
        raise ValueError(
            f"{where} is {value:g} {table.unit}: absolute budgets must be above 1 "
            "(numbers in (0, 1] are fractions of the full latency).")
    return value


def _example(table):
    return {"us": "5ms", "instructions": "1.5e6 instructions",
            "cycles": "2e6 cycles"}[table.unit]


def info(table):
    """What `plan.info["latency"]` records about the table."""
    return {"target": table.target, "unit": table.unit,
            "model": table.model["name"], "source": table.source}
