"""The plan: slicing points of every group in every subnetwork.

The plan is the contract between the solver, the Keras layers, the exporter
and the C++ operators. Subnetwork 0 is the full network; subnetworks are
numbered from largest to smallest, and every group's slicing points are
non-increasing with the index (each subnetwork is nested in the previous).

    plan = Plan({"conv2d": [64, 48, 32, 16], "conv2d_1": [64, 40, 30, 12]})
    plan.save("plan.json"); Plan.load("plan.json")
"""

import json
import numbers

import numpy as np

FORMAT_VERSION = 1


class Plan:
    """Slicing points per group and subnetwork.

    Args:
        widths: mapping group name -> sequence of widths, one per
            subnetwork; entry 0 is the group's full width.
        costs: optional list (one per subnetwork) of dicts resource -> cost,
            e.g. `{"macs": 1234, "params": 567}` (see `hads_keras.costs`).
        order: optional mapping group name -> unit order (a permutation of
            `range(width)`, most important unit first). `hads_keras.apply`
            permutes the model's units by it before slicing; solvers set it
            from the importance scores.
        info: optional JSON-serializable dict (targets, method, report).

    Raises:
        ValueError: naming the group and subnetwork, when widths are not
            integers in [1, full width], not non-increasing (nested), or
            the groups disagree on the number of subnetworks.
    """

    def __init__(self, widths, costs=None, order=None, info=None):
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
        self.costs = None if costs is None else [dict(c) for c in costs]
        if self.costs is not None and len(self.costs) != count:
            raise ValueError(
                f"costs has {len(self.costs)} entries for {count} subnetworks.")
        self.order = None
        if order is not None:
            self.order = {}
            for name, perm in order.items():
                if name not in self._widths:
                    raise ValueError(f"order names unknown group '{name}'.")
                perm = np.asarray(perm, dtype=np.int64)
                if sorted(perm.tolist()) != list(range(self._widths[name][0])):
                    raise ValueError(
                        f"order of group '{name}' is not a permutation of "
                        f"range({self._widths[name][0]}).")
                self.order[name] = perm
        self.info = dict(info or {})

    @property
    def groups(self):
        """Group names, in the order given."""
        return list(self._widths)

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
            if self._widths[name][0] != group.width:
                raise ValueError(
                    f"Group '{name}' has {group.width} units in the model but "
                    f"the plan's full width (subnetwork 0) is "
                    f"{self._widths[name][0]}; was the plan made for another "
                    "model?")

    def without_order(self):
        """The same plan, with no unit order (after the units were permuted)."""
        return Plan(self._widths, costs=self.costs, info=self.info)

    # Serialization -----------------------------------------------------

    def to_dict(self):
        data = {
            "format_version": FORMAT_VERSION,
            "num_subnetworks": self.num_subnetworks,
            "groups": [{"name": n, "widths": list(w)}
                       for n, w in self._widths.items()],
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
        if not isinstance(data, dict) or "groups" not in data:
            raise ValueError("Not a HADS plan: expected a dict with 'groups'.")
        version = data.get("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ValueError(
                f"Plan format version {version} is newer than this "
                f"hads_keras understands ({FORMAT_VERSION}); upgrade hads_keras.")
        widths = {g["name"]: g["widths"] for g in data["groups"]}
        return cls(widths, costs=data.get("costs"), order=data.get("order"),
                   info=data.get("info"))

    def to_json(self, **kwargs):
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))

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
            for resource in self.costs[0]:
                full = self.costs[0][resource] or 1
                rows.append([resource] + [
                    f"{c[resource]:,} ({100 * c[resource] / full:.0f}%)"
                    for c in self.costs])
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        return "\n".join("  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i])
                                   for i, c in enumerate(r)) for r in rows)

    def __repr__(self):
        return (f"<Plan {self.num_subnetworks} subnetworks, "
                f"{len(self._widths)} groups>")


def _as_int_tuple(values, what):
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
