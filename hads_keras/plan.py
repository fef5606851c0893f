"""The plan: slicing points of every group in every subnetwork.

The plan is the contract between the solver, the Keras layers, the exporter
and the C++ operators. Subnetwork 0 is the largest; subnetworks are
numbered from largest to smallest, and every group's slicing points are
non-increasing with the index (each subnetwork is nested in the previous).

Subnetwork 0 is usually the full network. When the model itself is over
budget (a memory limit it exceeds, `solve(..., include_full=False)`),
subnetwork 0 keeps only part of each group: the plan then records the
model's own widths (`full_widths`), `hads_keras.apply` keeps only the units
subnetwork 0 uses, and the nested model's plan is `rebased()` so that its
subnetwork 0 is its (smaller) full network.

    plan = Plan({"conv2d": [64, 48, 32, 16], "conv2d_1": [64, 40, 30, 12]})
    plan.save("plan.json"); Plan.load("plan.json")
"""

import json
import numbers
from collections.abc import Mapping

import numpy as np

FORMAT_VERSION = 2  # 2: `full_width` per group (subnetwork 0 below the model)
_FORMAT_WITHOUT_FULL_WIDTHS = 1  # what plans with subnetwork 0 = model write


class Plan:
    """Slicing points per group and subnetwork.

    Args:
        widths: mapping group name -> sequence of widths, one per
            subnetwork; entry 0 is the largest subnetwork's width (usually
            the group's full width).
        costs: optional list (one per subnetwork) of dicts resource -> cost,
            e.g. `{"macs": 1234, "params": 567}` (see `hads_keras.costs`).
        order: optional mapping group name -> unit order (a permutation of
            `range(width)`, most important unit first). `hads_keras.apply`
            permutes the model's units by it before slicing; solvers set it
            from the importance scores.
        info: optional dict of JSON values (targets, method, report);
            NumPy scalars and arrays are converted to Python numbers and
            lists here, anything else JSON cannot hold is refused.
        full_widths: optional mapping group name -> the model's width of
            the group, when subnetwork 0 keeps fewer units (a largest
            subnetwork under budget); default: `widths[g][0]`.

    Raises:
        ValueError: naming the group and subnetwork, when widths are not
            integers in [1, full width], not non-increasing (nested), or
            the groups disagree on the number of subnetworks.
    """

    def __init__(self, widths, costs=None, order=None, info=None, full_widths=None):
        if not widths:
            raise ValueError("A plan needs at least one group.")
        self._widths = {}
        count = None
        for name, values in widths.items():
            values = _as_int_tuple(values, f"group '{name}'")
            if count is None:
                count = len(values)
            if len(values) != count:
                raise ValueError(
                    f"Group '{name}' has {len(values)} slicing points but "
                    f"other groups have {count}: every group needs one per "
                    "subnetwork.")
            _check_nested(name, values)
            self._widths[str(name)] = values
        if count < 1:
            raise ValueError("A plan needs at least one subnetwork.")
        self.num_subnetworks = count
        self._full = self._check_full_widths(full_widths)
        self.costs = None
        if costs is not None:
            if isinstance(costs, (str, bytes, Mapping)) or not hasattr(costs, "__len__"):
                raise ValueError("costs must be a list with one dict (resource -> "
                                 f"cost) per subnetwork, got {type(costs).__name__}.")
            for k, c in enumerate(costs):
                if not isinstance(c, Mapping) or not all(
                        isinstance(v, numbers.Real) and not isinstance(v, bool)
                        for v in c.values()):
                    raise ValueError(
                        f"costs[{k}] must be a dict resource -> number, e.g. "
                        f"{{'macs': 1234}}, got {c!r}.")
            self.costs = [_json_value(dict(c), f"costs[{k}]")
                          for k, c in enumerate(costs)]
            if len(self.costs) != count:
                raise ValueError(
                    f"costs has {len(self.costs)} entries for {count} subnetworks.")
        self.order = None
        if order is not None:
            if not isinstance(order, Mapping):
                raise ValueError("order must be a dict group -> unit order, got "
                                 f"{type(order).__name__}.")
            self.order = {}
            for name, perm in order.items():
                if name not in self._widths:
                    raise ValueError(
                        f"order names group '{name}', which has no slicing points "
                        f"in this plan (its groups: {self.groups}); the widths and "
                        "the order must name the same groups.")
                perm = np.asarray(perm)
                if perm.ndim != 1 or (perm.size and not np.issubdtype(perm.dtype, np.integer)):
                    raise ValueError(
                        f"order of group '{name}' must be a list of unit indices.")
                perm = perm.astype(np.int64)
                full = self._full[name]
                if perm.size != full:
                    what = ("subnetwork 0's slicing point" if full_widths is None
                            else f"the model's width full_widths['{name}']")
                    raise ValueError(
                        f"Group '{name}': {what} is {full} but the unit order "
                        f"lists {perm.size} units; the order lists every unit "
                        "of the model's group (is a width wrong?).")
                if sorted(perm.tolist()) != list(range(full)):
                    raise ValueError(
                        f"order of group '{name}' is not a permutation of "
                        f"range({full}).")
                self.order[name] = perm
        if info is not None and not isinstance(info, Mapping):
            raise ValueError(f"info must be a dict, got {type(info).__name__}.")
        self.info = _json_value(dict(info or {}), "info")

    def _check_full_widths(self, full_widths):
        """group -> the model's width, checked against subnetwork 0."""
        if full_widths is None:
            return {n: w[0] for n, w in self._widths.items()}
        if not isinstance(full_widths, Mapping):
            raise ValueError("full_widths must be a dict group -> the model's "
                             f"width, got {type(full_widths).__name__}.")
        if set(full_widths) != set(self._widths):
            raise ValueError(
                f"full_widths names groups {sorted(full_widths)} but the plan "
                f"slices {sorted(self._widths)}; give one width per group.")
        out = {}
        for name, values in self._widths.items():
            (full,) = _as_int_tuple([full_widths[name]], f"full_widths['{name}']")
            if full < values[0]:
                raise ValueError(
                    f"Group '{name}': the model's width full_widths['{name}'] "
                    f"= {full} is below subnetwork 0's slicing point "
                    f"{values[0]}; a subnetwork cannot keep more units than "
                    "the model has.")
            out[name] = full
        return out

    @property
    def groups(self):
        """Group names, in the order given."""
        return list(self._widths)

    @property
    def full_widths(self):
        """group -> the model's width (subnetwork 0's unless `reduced`)."""
        return dict(self._full)

    @property
    def reduced(self):
        """True when subnetwork 0 keeps fewer units than the model: a
        largest subnetwork under budget (`hads_keras.apply` then drops the
        units no subnetwork uses)."""
        return any(self._full[n] != w[0] for n, w in self._widths.items())

    def widths(self, group):
        """Slicing points of `group`, one per subnetwork (0 = full)."""
        try:
            return self._widths[group]
        except KeyError:
            raise KeyError(f"The plan has no group '{group}'. Groups: "
                           f"{self.groups}") from None

    def width(self, group, subnetwork):
        self.check_subnetwork(subnetwork)
        return self.widths(group)[subnetwork]

    def subnetwork_widths(self, subnetwork):
        """{group: width} of one subnetwork, what costs, latency tables and
        the memory planner take."""
        self.check_subnetwork(subnetwork)
        return {g: w[subnetwork] for g, w in self._widths.items()}

    def full_width(self, group):
        return self.widths(group)[0]

    def check_subnetwork(self, index):
        """Raise a clear error unless `index` names a subnetwork."""
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(
                f"Subnetwork index must be an int, got {type(index).__name__}.")
        if not 0 <= index < self.num_subnetworks:
            raise ValueError(
                f"Subnetwork index {index} is out of range: this plan has "
                f"{self.num_subnetworks} subnetworks (0 = full network ... "
                f"{self.num_subnetworks - 1} = smallest).")

    def check_matches(self, analysis):
        """Check the plan against a model's groups (`hads_keras.groups`).

        Raises:
            ValueError: when the plan names groups the model lacks, misses
                sliceable groups, or disagrees on a full width.
        """
        model_groups = {g.name: g for g in analysis.sliceable}
        unknown = [n for n in self._widths if n not in model_groups]
        fixed = {g.name for g in analysis.groups if g.fixed}
        if unknown:
            fixed_hit = [n for n in unknown if n in fixed]
            hint = (f" Groups {fixed_hit} are fixed (model input or output) "
                    "and are never sliced." if fixed_hit else "")
            raise ValueError(
                f"The plan slices groups {unknown} that this model does not "
                f"have; was it made for another model? Model groups: "
                f"{sorted(model_groups)}.{hint}")
        missing = [n for n in model_groups if n not in self._widths]
        if missing:
            raise ValueError(
                f"The plan has no slicing points for groups {missing} of this "
                "model; was it made for another model?")
        for name, group in model_groups.items():
            if self._full[name] != group.width:
                raise ValueError(
                    f"Group '{name}' has {group.width} units in the model but "
                    f"the plan's full width is {self._full[name]}; was the "
                    "plan made for another model?")

    def without_order(self):
        """The same plan, with no unit order (after the units were permuted)."""
        return Plan(self._widths, costs=self.costs, info=self.info,
                    full_widths=self._full)

    def rebased(self):
        """The plan of the model that keeps only subnetwork 0's units (what
        `hads_keras.apply` builds from a `reduced` plan): the same slicing
        points, subnetwork 0 now its full network, no unit order. `info`
        (with its "largest" summary) is kept."""
        return Plan(self._widths, costs=self.costs, info=self.info)

    def largest_summary(self):
        """One line on a largest subnetwork under budget, e.g. "largest
        subnetwork: 60.0 % of the original model's MACs, 12,345 of 20,000
        units kept", or None when subnetwork 0 is the original model."""
        largest = self.info.get("largest")
        if not largest:
            return None
        shares = ", ".join(f"{100 * v:.1f} % of the original model's "
                           f"{_RESOURCE_NAMES.get(r, r)}"
                           for r, v in largest.get("fractions", {}).items())
        return (f"largest subnetwork: {shares + ', ' if shares else ''}"
                f"{largest['units_kept']:,} of {largest['units_total']:,} "
                "units kept")

    # Serialization -----------------------------------------------------

    def to_dict(self):
        reduced = self.reduced
        groups = [{"name": n, "widths": list(w)} for n, w in self._widths.items()]
        if reduced:
            for g in groups:
                g["full_width"] = self._full[g["name"]]
        data = {
            # Version 1 readers would take subnetwork 0 for the full network:
            # only plans that need it say 2.
            "format_version": FORMAT_VERSION if reduced else _FORMAT_WITHOUT_FULL_WIDTHS,
            "num_subnetworks": self.num_subnetworks,
            "groups": groups,
        }
        if self.costs is not None:
            data["costs"] = self.costs
        if self.order is not None:
            data["order"] = {n: p.tolist() for n, p in self.order.items()}
        if self.info:
            data["info"] = self.info
        return data

    @classmethod
    def from_dict(cls, data):
        """A plan from `to_dict`'s layout; anything else raises ValueError
        "not a valid HADS plan: ..." naming the field."""
        def bad(message):
            return ValueError(f"not a valid HADS plan: {message}")

        if not isinstance(data, Mapping):
            raise bad(f"expected an object with 'groups', got {type(data).__name__}.")
        if "groups" not in data:
            raise bad("missing field 'groups' (a list of {'name': ..., "
                      "'widths': [...]}).")
        version = data.get("format_version", FORMAT_VERSION)
        if isinstance(version, bool) or not isinstance(version, int):
            raise bad(f"'format_version' must be an integer, got {version!r}.")
        if version > FORMAT_VERSION:
            raise ValueError(
                f"Plan format version {version} is newer than this "
                f"hads_keras understands ({FORMAT_VERSION}); upgrade hads_keras.")
        groups = data["groups"]
        if not isinstance(groups, list):
            raise bad("'groups' must be a list of {'name': ..., 'widths': [...]}, "
                      f"got {type(groups).__name__}.")
        widths, full_widths = {}, {}
        for i, g in enumerate(groups):
            if not isinstance(g, Mapping):
                raise bad(f"groups[{i}] must be an object with 'name' and 'widths', "
                          f"got {g!r}.")
            for key in ("name", "widths"):
                if key not in g:
                    raise bad(f"groups[{i}] has no '{key}'.")
            name, w = g["name"], g["widths"]
            if not isinstance(name, str) or not name:
                raise bad(f"groups[{i}]: 'name' must be a non-empty string, got {name!r}.")
            if not isinstance(w, list):
                raise bad(f"groups[{i}] ('{name}'): 'widths' must be a list of "
                          f"integers, one per subnetwork, got {w!r}.")
            if name in widths:
                raise bad(f"group '{name}' appears twice in 'groups'.")
            widths[name] = w
            full_widths[name] = g.get("full_width", w[0] if w else 1)
        for key, kind in (("costs", list), ("order", Mapping), ("info", Mapping)):
            if data.get(key) is not None and not isinstance(data[key], kind):
                raise bad(f"'{key}' must be a{'' if kind is list else 'n'} "
                          f"{'list' if kind is list else 'object'}, got "
                          f"{type(data[key]).__name__}.")
        try:
            plan = cls(widths, costs=data.get("costs"), order=data.get("order"),
                       info=data.get("info"),
                       full_widths=full_widths if any(
                           "full_width" in g for g in groups) else None)
        except (ValueError, TypeError) as error:
            raise bad(str(error)) from None
        n = data.get("num_subnetworks", plan.num_subnetworks)
        if n != plan.num_subnetworks:
            raise bad(f"'num_subnetworks' is {n!r} but every group has "
                      f"{plan.num_subnetworks} slicing points.")
        return plan

    def to_json(self, **kwargs):
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not a valid HADS plan: not JSON ({error}).") from None
        return cls.from_dict(data)

    def save(self, path):
        with open(path, "w") as f:
            f.write(self.to_json(indent=2))

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls.from_json(f.read())

    def __eq__(self, other):
        return isinstance(other, Plan) and self.to_dict() == other.to_dict()

    def __str__(self):
        header = ["group"] + [f"sub{k}" for k in range(self.num_subnetworks)]
        rows = [header]
        for name, w in self._widths.items():
            rows.append([name] + [str(v) for v in w])
        if self.costs:
            # Percentages of the original model (subnetwork 0 unless reduced).
            original = (self.info.get("largest") or {}).get("original_costs", {})
            for resource in self.costs[0]:
                full = original.get(resource, self.costs[0][resource]) or 1
                rows.append([resource] + [
                    f"{c[resource]:,.0f} ({100 * c[resource] / full:.0f}%)"
                    for c in self.costs])
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = ["  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i])
                           for i, c in enumerate(r)) for r in rows]
        summary = self.largest_summary()
        if summary:
            lines.append(summary)
        return "\n".join(lines)

    def __repr__(self):
        return (f"<Plan {self.num_subnetworks} subnetworks, "
                f"{len(self._widths)} groups>")


_RESOURCE_NAMES = {"macs": "MACs", "params": "parameters",
                   "memory": "activation memory"}


def largest_info(widths0, full_widths, costs0, full_costs):
    """The `info["largest"]` entry of a plan whose subnetwork 0 is below the
    model: units kept of all, and its share of each of the model's costs.

    Args:
        widths0, full_widths: group -> width of subnetwork 0 / of the model.
        costs0, full_costs: resource -> cost of subnetwork 0 / of the model.
    """
    return {"units_kept": int(sum(widths0.values())),
            "units_total": int(sum(full_widths.values())),
            "fractions": {r: float(costs0[r]) / float(full_costs[r])
                          for r in costs0 if r in full_costs and full_costs[r]},
            "original_costs": {r: full_costs[r] for r in full_costs}}


def _json_value(value, where):
    """`value` with NumPy scalars / arrays as Python numbers / lists; raises
    ValueError naming `where` for anything JSON cannot hold."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: keys must be strings, got {k!r}.")
            out[k] = _json_value(v, f"{where}['{k}']")
        return out
    if isinstance(value, (list, tuple)):
        return [_json_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ValueError(f"{where}: {type(value).__name__} {value!r} cannot be saved "
                     "as JSON; use numbers, strings, lists and dicts.")


def _as_int_tuple(values, what):
    if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{what}: slicing points must be a list of integers, one "
                         f"per subnetwork, got {values!r}.")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            else:
                raise ValueError(f"{what}: slicing points must be integers, got {v!r}.")
        out.append(int(v))
    return tuple(out)


def _check_nested(name, values):
    for k, v in enumerate(values):
        if v < 1:
            raise ValueError(
                f"Group '{name}', subnetwork {k}: slicing point {v} is below "
                "1; every subnetwork keeps at least one unit per group.")
        if k and v > values[k - 1]:
            raise ValueError(
                f"Group '{name}', subnetwork {k}: slicing point {v} exceeds "
                f"subnetwork {k - 1}'s {values[k - 1]}; subnetworks must be "
                "nested (non-increasing from subnetwork 0, the full network, "
                "to the smallest).")
