"""Latency tables: what each sliced layer costs on a target, by width.

MACs are a proxy; on a microcontroller a depthwise MAC costs several times
a pointwise one, and every output row has an overhead. A latency table
holds, for one model on one target, the measured cost of every sliced
layer at a grid of its active input and output widths (instructions on the
Cortex-M4 emulator, cycles on a board, microseconds on the host), plus the
constant cost of the operators no width changes. The solvers interpolate
between grid points (`hads_keras.knapsack.table.TableTerm`), so a few
widths per group are enough.

    table = LatencyTable.load("ds_cnn_s.cortex-m4-qemu.json")
    plan = hads_keras.solve(model, importance, latency_targets=[1.0, .5, .25],
                            latency_table=table)

File format (JSON, ``"format": "hads-latency-table"``, version 1)::

    {"format": "hads-latency-table", "version": 1,
     "target": "cortex-m4-qemu",            # where it was measured
     "unit": "instructions",                # "instructions" | "cycles" | "us"
     "model": {"name": "ds_cnn_s", "fingerprint": "<sha256>"},
     "source": {...},                       # free-form: tool, command, date
     "constant": 1234.0,                    # operators outside `layers`
     "layers": [{"layer": "conv_1",
                 "groups": ["conv_0", "conv_1"],      # sliced input, output
                 "widths": [[8, 16, 32, 64], [8, 16, 32, 64]],
                 "cost": [[...4 values...], ...]}]}   # cost[i][j]

`groups` are the sliced groups a layer's cost depends on (input group
first; one group for a depthwise convolution or a layer reading the model
input, none for a layer whose groups are all fixed), `widths` the grid of
each, `cost` the measured values (shape = grid lengths). The fingerprint
is a hash of the model's layers with weights (names, classes, input,
output and weight shapes), so a table made for another model is refused
(`check_model`); `check_target` refuses one made on another target.
"""

from __future__ import annotations

import hashlib
import json
import math
import pathlib

import numpy as np

from hads_keras.knapsack.table import TableTerm

FORMAT = "hads-latency-table"
FORMAT_VERSION = 1
UNITS = ("instructions", "cycles", "us")
RESOURCE = "latency"
CONSTANT_LAYER = "<operators outside the sliced layers>"


class LatencyTable:
    """Measured per-layer latency of one model on one target.

    Args:
        target: where it was measured, e.g. "cortex-m4-qemu",
            "host-litert", "nano33ble".
        unit: "instructions", "cycles" or "us".
        model: {"name": ..., "fingerprint": model_fingerprint(model)}.
        layers: list of dicts {"layer", "groups", "widths", "cost"} (see the
            module docstring).
        constant: cost of everything outside `layers` (>= 0).
        source: free-form JSON description of how it was measured.
    """

    def __init__(self, target, unit, model, layers, constant=0.0, source=None):
        if not isinstance(target, str) or not target:
            raise ValueError(f"Latency table: target must be a non-empty string, got {target!r}.")
        if unit not in UNITS:
            raise ValueError(
                f"Latency table: unit must be one of {UNITS}, got {unit!r}; "
                "convert the measurements to one of them.")
        if not isinstance(model, dict) or not isinstance(model.get("fingerprint"), str):
            raise ValueError(
                "Latency table: model must be a dict with 'name' and 'fingerprint' "
                "(hads_keras.latency.model_fingerprint(model)).")
        constant = _cost_value(constant, "constant")
        self.target = target
        self.unit = unit
        self.model = {"name": str(model.get("name", "")), "fingerprint": model["fingerprint"]}
        self.constant = constant
        self.source = dict(source or {})
        self.layers = {}
        for i, entry in enumerate(layers):
            term = _entry_term(entry, i)
            if term.layer in self.layers:
                raise ValueError(f"Latency table: layer '{term.layer}' appears twice.")
            self.layers[term.layer] = term

    # -- file format -------------------------------------------------------
    def to_dict(self):
        return {
            "format": FORMAT, "version": FORMAT_VERSION,
            "target": self.target, "unit": self.unit, "model": dict(self.model),
            "source": self.source, "constant": self.constant,
            "layers": [{"layer": t.layer, "groups": list(t.groups),
                        "widths": [a.tolist() for a in t.axes],
                        "cost": t.values.tolist()} for t in self.layers.values()],
        }

    @classmethod
    def from_dict(cls, data, where="latency table"):
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(
                f"{where} is not a HADS latency table (expected \"format\": "
                f"\"{FORMAT}\").")
        version = data.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"{where}: 'version' must be a positive integer, got {version!r}.")
        if version > FORMAT_VERSION:
            raise ValueError(
                f"{where} has format version {version}, newer than this hads_keras "
                f"reads ({FORMAT_VERSION}); upgrade hads_keras.")
        missing = [k for k in ("target", "unit", "model", "layers") if k not in data]
        if missing:
            raise ValueError(f"{where}: missing keys {missing}.")
        if not isinstance(data["layers"], list):
            raise ValueError(f"{where}: 'layers' must be a list of layer entries.")
        try:
            return cls(data["target"], data["unit"], data["model"], data["layers"],
                       data.get("constant", 0.0), data.get("source"))
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None

    def save(self, path):
        path = pathlib.Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path):
        path = pathlib.Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"Latency table file '{path}' does not exist.") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"Latency table file '{path}' is not valid JSON: {error}.") from None
        return cls.from_dict(data, where=f"Latency table file '{path}'")

    # -- matching a model ----------------------------------------------------
    def check_target(self, target):
        """Raises unless the table was measured on `target`."""
        if target != self.target:
            raise ValueError(
                f"The latency table was measured on target '{self.target}', not "
                f"'{target}'; measure a table on '{target}'.")

    def check_model(self, model):
        """Raises unless the table was made for this model's layers."""
        expected = model_fingerprint(model)
        if expected == self.model["fingerprint"]:
            return
        ours = set(self.layers)
        theirs = {layer for layer, _ in latency_layers(model)}
        detail = ""
        if ours - theirs:
            detail = f" It has layers the model lacks: {sorted(ours - theirs)[:5]}."
        elif theirs - ours:
            detail = f" The model has sliced layers it lacks: {sorted(theirs - ours)[:5]}."
        raise ValueError(
            f"The latency table was made for model '{self.model['name']}' with other "
            f"layers or shapes than this model ('{_network(model).name}'): the "
            f"fingerprints differ.{detail} Measure a table for this model.")

    def terms(self, model, keep=()):
        """TableTerms of this model: one per sliced layer, plus the constant.

        Checks the model first. A group the table measured but that the
        model keeps whole (``keep=`` here, as `hads_keras.solve` takes it,
        or remembered by the layers) is fixed at its full width.
        """
        self.check_model(model)
        out = []
        full = _full_widths(model, keep)
        for layer, groups in latency_layers(model, keep):
            if layer not in self.layers:
                raise ValueError(
                    f"The latency table has no entry for layer '{layer}'; "
                    "remeasure it for this model.")
            term = self.layers[layer]
            out.append(_restrict(term, groups, full))
        if self.constant:
            out.append(TableTerm(CONSTANT_LAYER, RESOURCE, (), (), self.constant))
        return out

    def cost(self, widths):
        """Latency of one subnetwork: constant + every layer at `widths`.

        `widths`: group name -> active width (groups a layer touches must
        be present).
        """
        total = self.constant
        for term in self.layers.values():
            missing = [g for g in term.groups if g not in widths]
            if missing:
                raise ValueError(
                    f"Latency of layer '{term.layer}' needs the widths of groups "
                    f"{missing}.")
            total += term(*(int(widths[g]) for g in term.groups))
        return float(total)

    def __repr__(self):
        return (f"LatencyTable(model='{self.model['name']}', target='{self.target}', "
                f"unit='{self.unit}', layers={len(self.layers)})")


def _entry_term(entry, i):
    where = f"layers[{i}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a dict with 'layer', 'groups', 'widths', 'cost'.")
    missing = [k for k in ("layer", "groups", "widths", "cost") if k not in entry]
    if missing:
        raise ValueError(f"{where} ({entry.get('layer', '?')}): missing keys {missing}.")
    groups, widths = entry["groups"], entry["widths"]
    if not isinstance(groups, list) or not isinstance(widths, list) or \
            len(groups) != len(widths):
        raise ValueError(
            f"{where} ({entry['layer']}): 'groups' and 'widths' must be lists of "
            "the same length (one grid of widths per group).")
    return TableTerm(str(entry["layer"]), RESOURCE, tuple(groups), tuple(widths),
                     entry["cost"])


def _cost_value(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value < 0:
        raise ValueError(f"Latency table: '{name}' must be a finite number >= 0, got {value!r}.")
    return float(value)


def _restrict(term, groups, full):
    """`term` on the model's current sliced `groups`: axes of groups that are
    now fixed are evaluated at their full width and dropped."""
    extra = [g for g in groups if g not in term.groups]
    if extra:
        raise ValueError(
            f"The latency table measured layer '{term.layer}' as a function of "
            f"{list(term.groups)}, but the model slices its groups {list(groups)}; "
            "remeasure the table for this model (same keep=).")
    if tuple(term.groups) == tuple(groups):
        return term
    domains = [np.array([full[g]]) if g not in groups else term.axes[i]
               for i, g in enumerate(term.groups)]
    values = term.on_domains(*domains)
    keep_axes = [i for i, g in enumerate(term.groups) if g in groups]
    values = values.reshape([values.shape[i] for i in keep_axes])
    return TableTerm(term.layer, RESOURCE, tuple(term.groups[i] for i in keep_axes),
                     tuple(term.axes[i] for i in keep_axes), values)


# -- the model side ----------------------------------------------------------

def _network(model):
    from hads_keras import _keras_compat
    return _keras_compat.unwrap(model)


def _analysis(model, keep=()):
    from hads_keras import graph as graph_lib
    network = _network(model)
    return graph_lib.analyze(network, keep)


def _full_widths(model, keep=()):
    return {g.name: g.width for g in _analysis(model, keep).groups}


def latency_layers(model, keep=()):
    """``[(layer, sliced groups)]``: the layers a latency table must cover.

    Every layer whose MACs depend on a sliced group (groups named in `keep`
    are not sliced), with the groups it depends on (input group first), in
    network order.
    """
    from hads_keras import costs as costs_lib
    analysis = _analysis(model, keep)
    groups = {}
    for term in costs_lib.cost_terms(analysis, resources=("macs",)):
        if term.groups:
            seen = groups.setdefault(term.layer, [])
            seen.extend(g for g in term.groups if g not in seen)
    for layer, names in groups.items():
        if len(names) > 2:
            raise ValueError(
                f"Layer '{layer}' depends on {len(names)} sliced groups {names} "
                "(it reads a concatenation); latency tables cover layers of at "
                "most two sliced groups: keep some of them whole (keep=[...]).")
    return [(layer, tuple(names)) for layer, names in groups.items()]


def model_fingerprint(model):
    """A hash of the model's layers with weights: names, classes, shapes.

    Independent of HADS internals (groups, keep=, plans), so a converted,
    permuted or nested model has the fingerprint of the model it came from.
    """
    network = _network(model)
    rows = []
    for layer in network.layers:
        if not layer.weights:
            continue
        rows.append([layer.name, _base_class(layer), _shape(layer.input),
                     _shape(layer.output), _weight_shapes(layer)])
    text = json.dumps(rows, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _weight_shapes(layer):
    """Shapes of the layer's weights, with the per-subnetwork rows of a HADS
    BatchNormalization's statistics ([subnetworks, C]) read as one ([C]):
    the table describes the layer, not how many subnetworks a plan gave it."""
    per_subnetwork = ({id(layer.moving_mean), id(layer.moving_variance)}
                      if hasattr(layer, "num_subnetworks") else set())
    return [list(w.shape)[1:] if id(w) in per_subnetwork else list(w.shape)
            for w in layer.weights]


def _base_class(layer):
    """The Keras class a HADS layer stands for (hads Dense -> Dense)."""
    import keras
    for cls in type(layer).__mro__:
        if cls.__module__.startswith("keras") and hasattr(keras.layers, cls.__name__):
            return cls.__name__
    return type(layer).__name__


def _shape(tensors):
    if isinstance(tensors, (list, tuple)):
        return [_shape(t) for t in tensors]
    return list(tensors.shape)


ALL_POINTS = "all"


def grid_widths(full, points=5, minimum=1, multiple_of=1):
    """A measuring grid for one group: `points` widths from `minimum` to
    `full`, evenly spaced, rounded to multiples of `multiple_of`, always
    holding `minimum` and `full`. `points="all"`: every multiple of
    `multiple_of` from `minimum` on, and `full`: a table exact at every
    width a plan with that `multiple_of` can pick (no interpolation)."""
    if points == ALL_POINTS:
        if full < 1 or minimum < 1 or minimum > full or multiple_of < 1:
            raise ValueError(
                f"grid_widths: need 1 <= minimum ({minimum}) <= full ({full}) and "
                f"multiple_of ({multiple_of}) >= 1.")
        first = -(-minimum // multiple_of) * multiple_of
        return sorted(set(range(first, full + 1, multiple_of)) | {int(minimum), int(full)})
    if full < 1 or minimum < 1 or minimum > full or points < 2:
        raise ValueError(
            f"grid_widths: need 1 <= minimum ({minimum}) <= full ({full}) and "
            f"points ({points}) >= 2 (or points='all').")
    raw = np.linspace(minimum, full, points)
    if multiple_of > 1:
        raw = np.round(raw / multiple_of) * multiple_of
    widths = np.clip(np.round(raw).astype(np.int64), minimum, full)
    return sorted(set(widths.tolist()) | {int(minimum), int(full)})


def build_table(model, target, unit, measure, *, grids=None, points=5,
                minimum=1, constant=0.0, source=None, name=None):
    """Measures a table: `measure(layer, widths)` -> cost at one grid point.

    Args:
        model: the model (Keras/HADS layers, or a NestedModel).
        target, unit: as in `LatencyTable`.
        measure: callable(layer name, tuple of widths, one per sliced group
            of the layer (input first)) -> cost (>= 0).
        grids: optional dict group -> widths to measure; by default
            `grid_widths(full, points, minimum)` per group.
        constant: the cost of the operators outside the sliced layers.
    """
    analysis = _analysis(model)
    full = {g.name: g.width for g in analysis.groups}
    grids = dict(grids or {})
    layers = []
    for layer, groups in latency_layers(model):
        axes = [list(grids.get(g) or grid_widths(full[g], points, min(minimum, full[g])))
                for g in groups]
        cost = np.zeros([len(a) for a in axes])
        for index in np.ndindex(*cost.shape):
            cost[index] = measure(layer, tuple(int(axes[i][j]) for i, j in enumerate(index)))
        layers.append({"layer": layer, "groups": list(groups), "widths": axes,
                       "cost": cost.tolist()})
    return LatencyTable(
        target, unit, {"name": name or _network(model).name,
                       "fingerprint": model_fingerprint(model)},
        layers, constant, source)
