"""The slicing problem, independent of Keras: groups, cost terms, targets.

A *group* is a set of coupled units that share one slicing point per
subnetwork (a Dense/Conv2D's outputs, the BN and depthwise channels after it,
the next layer's input rows). Its importance is sorted non-increasing, so a
subnetwork keeps a prefix of length ``width`` and gains the prefix sum.

A *cost term* is one layer's contribution to one resource (MACs,
parameters, ...): ``coef * product of the widths of 0, 1 or 2 groups``.
Widths of groups that are never sliced (the model input, the classifier
output) are already folded into ``coef``. For a pair term the groups are
given as ``(input group, output group)``; the order only matters for the
paper's equation 1 (see :meth:`Problem.unit_weights`).

A term on one group twice, ``groups=(g, g)``, is a quadratic self term
``coef * s_g ** 2`` (a layer whose input and output are the same group, or
a cost fitted as a quadratic in one width).

A *table term* (:class:`hads_keras.knapsack.table.TableTerm`, in
``Problem(..., tables=...)``) is a measured cost of one layer on a grid of
the widths of its 0, 1 or 2 groups, interpolated between grid points
(latency: instructions, cycles, microseconds); it adds to its resource like
a cost term, and on a chain it is any function of one width or of two
neighbouring widths, which the chain DP handles exactly.

A *peak resource* (activation memory, say) is not a sum over layers but a
maximum over operators: :class:`PeakTerm` lists one operator's terms, and a
subnetwork's cost of that resource is the largest operator sum. A resource
is either additive (``terms``) or peak (``peaks``), never both.

Example, DNN 490 -> 144 -> 144 -> 144 -> 12, MACs::

    dense   490 * s1        CostTerm("dense", "macs", 490, ("g1",))
    dense_1 s1 * s2         CostTerm("dense_1", "macs", 1, ("g1", "g2"))
    dense_2 s2 * s3         CostTerm("dense_2", "macs", 1, ("g2", "g3"))
    dense_3 12 * s3         CostTerm("dense_3", "macs", 12, ("g3",))
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Mapping, Sequence

import numpy as np

from hads_keras.knapsack.table import TableTerm


@dataclasses.dataclass(frozen=True)
class GroupSpec:
    """A sliceable group of units.

    Attributes:
      name: group name, e.g. the producing layer's name ("conv2d_1").
      importance: float64 array [full_width], finite, >= 0, sorted
        non-increasing. Only ratios matter: every solver gives the same plan
        for ``c * importance``, any ``c > 0`` (see :meth:`Problem.normalized`).
      min_width: the smallest slicing point any subnetwork may use (>= 0).
    """

    name: str
    importance: np.ndarray
    min_width: int = 1

    def __post_init__(self):
        imp = np.asarray(self.importance, dtype=np.float64)
        if imp.ndim != 1 or imp.size == 0:
            raise ValueError(
                f"Group '{self.name}': importance must be a non-empty 1-D array "
                f"(one score per unit), got shape {imp.shape}.")
        if not np.all(np.isfinite(imp)):
            bad = np.flatnonzero(~np.isfinite(imp))[:5].tolist()
            raise ValueError(
                f"Group '{self.name}': importance has NaN/inf at units {bad}; "
                "recompute importance (e.g. more batches, check the loss).")
        if np.any(imp < 0):
            i = int(np.flatnonzero(imp < 0)[0])
            raise ValueError(
                f"Group '{self.name}': importance must be >= 0 (unit {i} = "
                f"{imp[i]:g}); importance is what a unit is worth, e.g. a Taylor "
                "score |sum g * w|: pass absolute values.")
        if np.any(np.diff(imp) > 0):
            i = int(np.flatnonzero(np.diff(imp) > 0)[0])
            raise ValueError(
                f"Group '{self.name}': importance must be sorted non-increasing "
                f"(unit {i + 1} = {imp[i + 1]:g} > unit {i} = {imp[i]:g}); "
                "sort it (and permute the units the same way) first.")
        if not (0 <= int(self.min_width) <= imp.size):
            raise ValueError(
                f"Group '{self.name}': min_width={self.min_width} must be in "
                f"[0, full width {imp.size}].")
        imp.setflags(write=False)
        object.__setattr__(self, "importance", imp)
        object.__setattr__(self, "min_width", int(self.min_width))

    @property
    def width(self) -> int:
        return int(self.importance.size)

    @property
    def prefix(self) -> np.ndarray:
        """prefix[s] = importance kept at slicing point s (length width+1)."""
        return np.concatenate([[0.0], np.cumsum(self.importance)])


@dataclasses.dataclass(frozen=True)
class CostTerm:
    """``coef * prod(width[g] for g in groups)`` of one resource of one layer."""

    layer: str
    resource: str
    coef: float
    groups: tuple[str, ...] = ()

    def __post_init__(self):
        groups = tuple(self.groups)
        if len(groups) > 2:
            raise ValueError(
                f"Cost term of layer '{self.layer}': at most 2 groups, got {groups}.")
        coef = float(self.coef)
        if not math.isfinite(coef) or coef < 0:
            raise ValueError(
                f"Cost term of layer '{self.layer}' ({self.resource}): coef must be "
                f"finite and >= 0, got {self.coef}.")
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "coef", coef)

    @property
    def quadratic(self) -> bool:
        """``coef * s_g ** 2``: the same group twice."""
        return len(self.groups) == 2 and self.groups[0] == self.groups[1]


@dataclasses.dataclass(frozen=True)
class PeakTerm:
    """One operator of a peak resource: its cost is the sum of ``terms``
    (CostTerms of ``resource``, e.g. the bytes of the tensors live while it
    runs); a subnetwork's cost of the resource is the max over operators."""

    operator: str
    resource: str
    terms: tuple[CostTerm, ...]

    def __post_init__(self):
        terms = tuple(self.terms)
        for t in terms:
            if not isinstance(t, CostTerm):
                raise TypeError(
                    f"Peak term of operator '{self.operator}': terms must be "
                    f"CostTerms, got {type(t).__name__}.")
            if t.resource != self.resource:
                raise ValueError(
                    f"Peak term of operator '{self.operator}' ({self.resource}) "
                    f"holds a term of resource '{t.resource}' (layer '{t.layer}'); "
                    "give every term the operator's resource.")
        object.__setattr__(self, "terms", terms)

    @property
    def groups(self) -> tuple[str, ...]:
        """The groups its cost depends on, each once."""
        return tuple(dict.fromkeys(g for t in self.terms for g in t.groups))


@dataclasses.dataclass(frozen=True)
class Problem:
    """Sliceable groups (network order), the cost terms of every additive
    resource, its measured table terms, and the operators of every peak
    resource."""

    groups: tuple[GroupSpec, ...]
    terms: tuple[CostTerm, ...]
    peaks: tuple[PeakTerm, ...] = ()
    tables: tuple[TableTerm, ...] = ()

    def __post_init__(self):
        groups = tuple(self.groups)
        terms = tuple(self.terms)
        peaks = tuple(self.peaks)
        tables = tuple(self.tables)
        names = [g.name for g in groups]
        if len(set(names)) != len(names):
            raise ValueError(f"Duplicate group names in {names}.")
        known = set(names)
        for p in peaks:
            if not isinstance(p, PeakTerm):
                raise TypeError(f"peaks must be PeakTerms, got {type(p).__name__}.")
        for t in terms + tuple(t for p in peaks for t in p.terms):
            for g in t.groups:
                if g not in known:
                    raise ValueError(
                        f"Cost term of layer '{t.layer}' refers to unknown group "
                        f"'{g}'; known groups: {names}.")
        by_name = {g.name: g for g in groups}
        for t in tables:
            if not isinstance(t, TableTerm):
                raise TypeError(f"tables must be TableTerms, got {type(t).__name__}.")
            for g, axis in zip(t.groups, t.axes):
                if g not in known:
                    raise ValueError(
                        f"Table term of layer '{t.layer}' refers to unknown group "
                        f"'{g}'; known groups: {names}.")
                need = (by_name[g].min_width, by_name[g].width)
                if axis[0] > need[0] or axis[-1] < need[1]:
                    raise ValueError(
                        f"Latency table: layer '{t.layer}' was measured at widths "
                        f"{axis[0]}..{axis[-1]} of group '{g}' (grid "
                        f"{axis.tolist()}), but subnetworks may use widths "
                        f"{need[0]}..{need[1]}; remeasure the table with a grid "
                        f"from {need[0]} to {need[1]} (or raise min_width).")
        both = sorted(({t.resource for t in terms} | {t.resource for t in tables})
                      & {p.resource for p in peaks})
        if both:
            raise ValueError(
                f"Resource(s) {both} have both additive cost terms and peak "
                "operators; a resource is either a sum over layers (terms) or a "
                "max over operators (peaks): give the peak one another name.")
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "terms", terms)
        object.__setattr__(self, "peaks", peaks)
        object.__setattr__(self, "tables", tables)

    # -- basic views -------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [g.name for g in self.groups]

    def index(self, name: str) -> int:
        return self.names.index(name)

    @property
    def full_widths(self) -> np.ndarray:
        return np.array([g.width for g in self.groups], dtype=np.int64)

    @property
    def resources(self) -> list[str]:
        """Additive resources first, then peak resources (first-seen order)."""
        out = []
        for r in ([t.resource for t in self.terms] + [t.resource for t in self.tables]
                  + [p.resource for p in self.peaks]):
            if r not in out:
                out.append(r)
        return out

    @property
    def peak_resources(self) -> list[str]:
        return [r for r in self.resources if self.is_peak(r)]

    def is_peak(self, resource: str) -> bool:
        return any(p.resource == resource for p in self.peaks)

    def operators(self, resource: str) -> list[PeakTerm]:
        return [p for p in self.peaks if p.resource == resource]

    def _additive_terms(self, resource: str) -> list:
        """CostTerms and TableTerms of an additive resource."""
        return [t for t in self.terms + self.tables if t.resource == resource]

    def has_tables(self, resource: str) -> bool:
        return any(t.resource == resource for t in self.tables)

    def _check_resource(self, resource: str):
        if resource not in self.resources:
            raise ValueError(
                f"Unknown resource '{resource}'; the problem has cost terms for "
                f"{self.resources}.")

    @property
    def importance_unit(self) -> float:
        """The largest importance score of any unit (0 if all are zero)."""
        return max(float(g.importance[0]) for g in self.groups) if self.groups else 0.0

    def normalized(self) -> tuple["Problem", float]:
        """``(problem with importance / unit, unit)``, unit the largest score.

        The solvers work on ratios of importance, so dividing every score by
        one constant changes no plan; doing it once, before any product,
        keeps Taylor scores of 1e-300 or 1e300 away from underflow, overflow
        and the solvers' tolerances. Returns ``(self, 1.0)`` when the largest
        score is already 1 or every score is 0.
        """
        unit = self.importance_unit
        if unit in (0.0, 1.0):
            return self, 1.0
        groups = tuple(GroupSpec(g.name, g.importance / unit, g.min_width)
                       for g in self.groups)
        return dataclasses.replace(self, groups=groups), unit

    # -- costs ------------------------------------------------------------
    def cost(self, widths: Sequence[int] | Mapping[str, int], resource: str) -> float:
        """Exact cost of one subnetwork: the sum of its terms (additive
        resource) or the largest operator's sum (peak resource)."""
        self._check_resource(resource)
        w = self._width_vector(widths)
        at = {name: float(v) for name, v in zip(self.names, w)}
        if self.is_peak(resource):
            return max(sum(term_value(t, at) for t in p.terms)
                       for p in self.operators(resource))
        return float(sum(term_value(t, at) for t in self._additive_terms(resource)))

    def full_cost(self, resource: str) -> float:
        return self.cost(self.full_widths, resource)

    def _width_vector(self, widths) -> np.ndarray:
        if isinstance(widths, Mapping):
            missing = [n for n in self.names if n not in widths]
            if missing:
                raise ValueError(f"Widths missing for groups {missing}.")
            return np.array([int(widths[n]) for n in self.names], dtype=np.int64)
        w = np.asarray(widths, dtype=np.int64)
        if w.shape != (len(self.groups),):
            raise ValueError(
                f"Expected {len(self.groups)} widths (one per group), got {w.shape}.")
        return w

    def _span(self, term, groups=None) -> tuple[int, ...]:
        """Sorted network positions of the distinct groups a term (or a list
        of groups) touches; raises if they are not one or two neighbours."""
        idx = sorted({self.index(g) for g in (term.groups if groups is None
                                              else groups)})
        if len(idx) == 2 and idx[1] != idx[0] + 1:
            what = (f"Layer '{term.layer}' couples groups {term.groups}"
                    if groups is None else
                    f"Operator '{term.operator}' of {term.resource} depends on "
                    f"groups {tuple(groups)}")
            raise ValueError(
                f"{what} that are not neighbours in the group order, so the "
                "problem is not a chain; use solver='cp-sat' (or reorder the "
                "groups).")
        return tuple(idx)

    def is_chain(self, resources=None) -> bool:
        """Whether every term (and peak operator) of ``resources`` (default:
        all) touches one group or two neighbouring groups, as the chain
        solvers need."""
        resources = self.resources if resources is None else list(resources)
        try:
            for r in resources:
                if self.is_peak(r):
                    for p in self.operators(r):
                        self._span(p, p.groups)
                else:
                    for t in self._additive_terms(r):
                        self._span(t)
        except ValueError:
            return False
        return True

    def chain_costs(self, resource: str, doms):
        """An additive resource's cost on a chain, as arrays on the allowed
        widths ``doms[g]`` of every group: ``(const, node, edge)`` with
        ``cost(s) = const + sum_g node[g][s_g] + sum_g edge[g][s_g, s_{g+1}]``
        (any function of one width, or of two neighbouring widths: linear,
        quadratic self terms, bilinear pairs).

        Raises if a term joins groups that are not neighbours.
        """
        self._check_resource(resource)
        if self.is_peak(resource):
            raise ValueError(f"'{resource}' is a peak resource (a max over "
                             "operators), not a sum; use peak_masks.")
        const = 0.0
        node = [np.zeros(len(d)) for d in doms]
        edge = [np.zeros((len(a), len(b))) for a, b in zip(doms[:-1], doms[1:])]
        for t in self._additive_terms(resource):
            idx = self._span(t)
            vals = _on_span(t, idx, self, doms)
            if not idx:
                const += float(vals)
            elif len(idx) == 1:
                node[idx[0]] += vals
            else:
                edge[idx[0]] += vals
        return const, node, edge

    def peak_masks(self, resource: str, limit: float, doms):
        """Which widths keep every operator of a peak resource within
        ``limit``: ``(node_ok, edge_ok)``, boolean arrays shaped like
        :meth:`chain_costs`' node and edge (an operator on two neighbouring
        groups forbids pairs, one on a single group forbids widths; a
        constant operator above the limit forbids everything).

        Raises if an operator depends on groups that are not neighbours.
        """
        node_ok = [np.ones(len(d), dtype=bool) for d in doms]
        edge_ok = [np.ones((len(a), len(b)), dtype=bool)
                   for a, b in zip(doms[:-1], doms[1:])]
        for p in self.operators(resource):
            idx = self._span(p, p.groups)
            total = np.zeros([len(doms[i]) for i in idx])
            for t in p.terms:
                tidx = self._span(t)
                vals = _on_span(t, tidx, self, doms)
                # Broadcast the term onto the operator's axes.
                shape = [len(doms[i]) if i in tidx else 1 for i in idx]
                total = total + np.reshape(vals, shape)
            ok = total <= limit
            if not idx:
                if not bool(ok):
                    for m in node_ok:
                        m[:] = False
            elif len(idx) == 1:
                node_ok[idx[0]] &= ok
            else:
                edge_ok[idx[0]] &= ok
        return node_ok, edge_ok

    def unit_weights(self, resource: str) -> tuple[float, np.ndarray]:
        """The paper's equation 1: each unit's cost at full neighbour width.

        A pair term ``coef * s_in * s_out`` is charged to the output group's
        units as ``coef * full_in`` each (a filter's MACs with all input
        channels); a quadratic self term ``coef * s_g ** 2`` as
        ``coef * full_g`` per unit of g; a single-group term is charged to its
        group exactly. Returns ``(const, w)`` with ``w[g]`` the weight of
        every unit of group ``g``; ``const + sum_g w[g] s_g >= cost(s)`` for
        every ``s``.
        """
        self._check_resource(resource)
        if self.is_peak(resource) or self.has_tables(resource):
            what = ("a peak resource (a max over operators)" if self.is_peak(resource)
                    else "measured in a table (no fixed cost per unit)")
            raise ValueError(
                f"costs='paper' (equation 1) charges every unit a fixed weight of "
                f"a sum; '{resource}' is {what}. Use costs='exact'.")
        full = self.full_widths
        const, w = 0.0, np.zeros(len(self.groups))
        for t in self.terms:
            if t.resource != resource:
                continue
            if not t.groups:
                const += t.coef
            elif len(t.groups) == 1:
                w[self.index(t.groups[0])] += t.coef
            else:  # a pair, or (g, g): coef * full_g per unit of g
                gin, gout = (self.index(g) for g in t.groups)
                w[gout] += t.coef * float(full[gin])
        return const, w

    # -- widths a subnetwork may use ---------------------------------------
    def min_widths(self, multiple_of: int = 1) -> np.ndarray:
        return np.array([allowed_widths(g, multiple_of)[0] for g in self.groups],
                        dtype=np.int64)

    def check_widths(self, expected: Mapping[str, int]):
        """Raises if a group's importance length differs from its layer's
        width (``expected``: group name -> number of units)."""
        for g in self.groups:
            if g.name in expected and int(expected[g.name]) != g.width:
                raise ValueError(
                    f"Group '{g.name}': importance has {g.width} scores but the "
                    f"layer has {int(expected[g.name])} units; recompute importance "
                    "for this model.")
        missing = [n for n in expected if n not in self.names]
        if missing:
            raise ValueError(f"No importance for groups {missing}.")

    def objective(self, widths) -> float:
        """Importance kept: sum over groups of the prefix sums."""
        w = self._width_vector(widths)
        return float(sum(g.prefix[int(s)] for g, s in zip(self.groups, w)))


def term_value(term, widths: Mapping[str, float]) -> float:
    """One term's cost at ``widths`` (group name -> width); ``(g, g)`` gives
    ``coef * s_g ** 2``, a TableTerm its interpolated measurement."""
    if isinstance(term, TableTerm):
        return term(*(widths[g] for g in term.groups))
    return term.coef * math.prod(widths[g] for g in term.groups)


def _on_span(term, idx, problem: Problem, doms) -> np.ndarray:
    """A term's cost on the cartesian product of the allowed widths of the
    groups at positions ``idx`` (sorted, as :meth:`Problem._span` gives)."""
    if isinstance(term, TableTerm):
        vals = term.on_domains(*(doms[problem.index(g)] for g in term.groups))
        if len(idx) == 2 and problem.index(term.groups[0]) > idx[0]:
            vals = vals.T  # the table's input group comes later in the chain
        return vals
    if not idx:
        return np.float64(term.coef)
    if len(idx) == 1:  # s_g, or s_g ** 2 for a quadratic self term
        return term.coef * doms[idx[0]].astype(np.float64) ** len(term.groups)
    return term.coef * np.outer(doms[idx[0]].astype(np.float64),
                                doms[idx[1]].astype(np.float64))


def allowed_widths(group: GroupSpec, multiple_of: int = 1) -> np.ndarray:
    """Slicing points of a group: multiples of ``multiple_of`` in
    [min_width, width], plus the full width (always allowed: subnetwork 0)."""
    m = int(multiple_of)
    lo = group.min_width
    first = -(-lo // m) * m
    vals = np.arange(first, group.width + 1, m, dtype=np.int64)
    if vals.size == 0 or vals[-1] != group.width:
        vals = np.append(vals, group.width)
    return vals


def resolve_targets(problem: Problem, targets, *, multiple_of: int = 1,
                    floor_costs: Mapping[str, float] | None = None,
                    include_full: bool = True) -> list[dict]:
    """Turns ``{resource: [budgets...]}`` into absolute budgets per subnetwork.

    Budgets in (0, 1] are fractions of the full cost, larger numbers are
    absolute costs (1.5 is 1.5 MACs, refused as implausible when below the
    smallest network's cost). They must be strictly decreasing, except for a
    peak resource (a limit such as the board's RAM, the same for every
    subnetwork): non-increasing, and a limit above the full network's cost is
    read as that cost (it does not bind). With ``include_full`` (default)
    subnetwork 0 is the full network; it is prepended unless every
    resource's first budget is the full cost. With ``include_full=False`` the
    first budget's subnetwork is the largest one (it may be smaller than the
    full network). ``floor_costs`` (default: the exact cost at the minimum
    widths) is the smallest feasible cost per resource.
    Returns a list (one per subnetwork) of ``{resource: budget}``.
    """
    if isinstance(targets, Mapping):
        targets = dict(targets)
    else:
        raise TypeError(
            "targets must be a dict resource -> list of budgets, e.g. "
            "{'macs': [1.0, 0.75, 0.5, 0.25]}; got " + type(targets).__name__)
    if not targets:
        raise ValueError("targets is empty; give at least one resource with budgets.")
    for r, v in targets.items():
        if isinstance(v, (str, bytes)) or not hasattr(v, "__len__"):
            raise TypeError(
                f"targets['{r}'] must be a list of budgets, e.g. [1.0, 0.75, 0.5]; "
                f"got {type(v).__name__} {v!r}.")
        for i, b in enumerate(v):
            if isinstance(b, (bool, str, bytes)) or not isinstance(b, numbers.Real):
                raise TypeError(
                    f"targets['{r}'][{i}] = {b!r}: budgets must be numbers.")
    lengths = {r: len(v) for r, v in targets.items()}
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        raise ValueError(
            f"Every resource needs the same (non-zero) number of budgets, got {lengths}.")
    minw = problem.min_widths(multiple_of)
    absolute = {r: _absolute_budgets(problem, r, budgets, minw, multiple_of,
                                     floor_costs)
                for r, budgets in targets.items()}
    n = lengths[next(iter(lengths))]
    out = [{r: absolute[r][i] for r in absolute} for i in range(n)]
    full_first = all(out[0][r] >= problem.full_cost(r) for r in out[0])
    if include_full and not full_first:
        out.insert(0, {r: problem.full_cost(r) for r in absolute})
    return out


def _absolute_budgets(problem, r, budgets, minw, multiple_of, floor_costs):
    """One resource's budgets in its own unit, checked (see resolve_targets)."""
    problem._check_resource(r)
    peak = problem.is_peak(r)
    full = problem.full_cost(r)
    floor = (problem.cost(minw, r) if floor_costs is None else floor_costs[r])
    vals = []
    for i, b in enumerate(budgets):
        b = float(b)
        if not math.isfinite(b) or b <= 0:
            raise ValueError(
                f"targets['{r}'][{i}] = {b}: budgets must be fractions in (0, 1] "
                "of the full cost or absolute costs > 1.")
        v = b * full if b <= 1.0 else b
        if b > 1.0 and v < floor and not peak:
            raise ValueError(
                f"targets['{r}'][{i}] = {b:g} is neither a fraction in (0, 1] "
                f"of the full cost nor a plausible absolute budget: budgets "
                f"above 1 are read as absolute {r}, and the smallest possible "
                f"network already costs {floor:g} (the full one {full:g}).")
        if v > full * (1 + 1e-12) and not peak:
            raise ValueError(
                f"targets['{r}'][{i}] = {b:g} exceeds the full network's cost "
                f"{full:g}; give a fraction in (0, 1] or a smaller absolute budget.")
        vals.append(min(v, full))
    for i in range(1, len(vals)):
        if vals[i] > vals[i - 1] or (not peak and vals[i] == vals[i - 1]):
            raise ValueError(
                f"targets['{r}'] must be strictly decreasing"
                f"{' (a peak limit: non-increasing)' if peak else ''}, got "
                f"{list(budgets)}.")
    if vals[-1] < floor:
        raise ValueError(
            f"targets['{r}'][{len(vals) - 1}] = {budgets[-1]:g} is below the cost "
            f"of the smallest possible network (every group at its minimum width"
            f"{', multiple_of=%d' % multiple_of if multiple_of > 1 else ''}): "
            f"the smallest feasible budget is {floor:g} = {floor / full:.4f} of "
            f"the full {r} ({full:g}).")
    return vals
