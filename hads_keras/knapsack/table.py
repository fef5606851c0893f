"""Measured cost terms: a layer's cost tabulated on a grid of widths.

A `CostTerm` is ``coef * product of widths``: right for MACs and
parameters, not for what a layer costs on a real core (per-row overheads,
SIMD remainders, im2col buffers). A `TableTerm` holds measured costs
(instructions, cycles, microseconds) at a grid of widths of the 0, 1 or 2
sliced groups the layer touches and interpolates between grid points, so a
table for a large model is measured in minutes (a few widths per group)
and still gives the solvers a cost for every slicing point:

    term = TableTerm("conv_1", "latency", ("conv_0", "conv_1"),
                     axes=([16, 32, 64], [16, 32, 64]), values=costs_3x3)
    term(40, 20)                       # bilinear between the grid points
    term.on_domains(range(1, 65), range(1, 65))   # a 64 x 64 matrix

Interpolation is multilinear (exact at grid points); a width outside the
measured range is an error, not an extrapolation, because a table that
does not reach the narrowest subnetwork should be remeasured, not guessed.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class TableTerm:
    """Cost of one layer for one resource, measured on a grid of widths.

    Attributes:
      layer: the layer's name.
      resource: e.g. "latency".
      groups: 0, 1 or 2 sliced group names (input group first, as for
        `CostTerm`).
      axes: one strictly increasing array of measured widths (>= 0) per
        group.
      values: costs at the grid points, shape ``tuple(len(a) for a in
        axes)`` (a scalar for no group); finite and >= 0.
    """

    layer: str
    resource: str
    groups: tuple[str, ...]
    axes: tuple[np.ndarray, ...]
    values: np.ndarray

    def __post_init__(self):
        where = f"Table term of layer '{self.layer}' ({self.resource})"
        groups = tuple(str(g) for g in self.groups)
        if len(groups) > 2 or len(set(groups)) != len(groups):
            raise ValueError(
                f"{where}: groups must be 0, 1 or 2 distinct group names, got {groups}.")
        if len(self.axes) != len(groups):
            raise ValueError(
                f"{where}: {len(self.axes)} axes for {len(groups)} groups {groups}; "
                "give one axis of measured widths per group.")
        axes = []
        for group, axis in zip(groups, self.axes):
            raw = np.asarray(axis)
            if raw.ndim != 1 or raw.size == 0:
                raise ValueError(
                    f"{where}: the axis of group '{group}' must be a non-empty "
                    f"list of widths, got shape {raw.shape}.")
            if not np.all(np.isfinite(raw.astype(np.float64))) or \
                    np.any(raw.astype(np.float64) != np.round(raw.astype(np.float64))):
                raise ValueError(
                    f"{where}: the widths of group '{group}' must be integers, got "
                    f"{raw.tolist()}.")
            widths = raw.astype(np.int64)
            if np.any(widths < 0) or np.any(np.diff(widths) <= 0):
                raise ValueError(
                    f"{where}: the widths of group '{group}' must be >= 0 and "
                    f"strictly increasing, got {widths.tolist()}.")
            widths.setflags(write=False)
            axes.append(widths)
        try:
            values = np.array(self.values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: values must be numbers ({error}).") from None
        shape = tuple(a.size for a in axes)
        if values.shape != shape:
            raise ValueError(
                f"{where}: values have shape {values.shape}, the axes "
                f"{[a.tolist() for a in axes]} need {shape}.")
        bad = ~np.isfinite(values) | (values < 0)
        if np.any(bad):
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            at = ", ".join(f"{g}={a[i]}" for g, a, i in zip(groups, axes, index))
            raise ValueError(
                f"{where}: the cost at ({at}) is {float(values[index])}; costs must be "
                "finite and >= 0 (remeasure that point).")
        values.setflags(write=False)
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "axes", tuple(axes))
        object.__setattr__(self, "values", values)

    def __call__(self, *widths) -> float:
        """The cost at one width per group (multilinear interpolation)."""
        if len(widths) != len(self.groups):
            raise ValueError(
                f"Table term of layer '{self.layer}' needs {len(self.groups)} "
                f"widths (groups {self.groups}), got {len(widths)}.")
        domains = [np.array([w]) for w in widths]
        return float(self.on_domains(*domains).reshape(()))

    def on_domains(self, *domains) -> np.ndarray:
        """Costs on the cartesian product of one width array per group.

        Returns an array of shape ``tuple(len(d) for d in domains)``.
        """
        if len(domains) != len(self.groups):
            raise ValueError(
                f"Table term of layer '{self.layer}' needs {len(self.groups)} "
                f"width arrays (groups {self.groups}), got {len(domains)}.")
        result = self.values
        for i, (group, axis, domain) in enumerate(zip(self.groups, self.axes, domains)):
            low, high, fraction = self._brackets(group, axis, domain)
            shape = [1] * result.ndim
            shape[i] = -1
            fraction = fraction.reshape(shape)
            result = (np.take(result, low, axis=i) * (1.0 - fraction)
                      + np.take(result, high, axis=i) * fraction)
        return np.asarray(result, dtype=np.float64)

    def _brackets(self, group, axis, domain):
        widths = np.asarray(domain, dtype=np.float64).reshape(-1)
        outside = (widths < axis[0]) | (widths > axis[-1])
        if np.any(outside):
            width = widths[np.flatnonzero(outside)[0]]
            raise ValueError(
                f"Latency table: layer '{self.layer}' was measured at widths "
                f"{axis[0]}..{axis[-1]} of group '{group}' (grid {axis.tolist()}), "
                f"not at {int(width) if float(width).is_integer() else width}; "
                "remeasure the table with that width in its grid (the table "
                "interpolates inside the grid, it never extrapolates).")
        high = np.searchsorted(axis, widths, side="left")
        high = np.clip(high, 0, axis.size - 1)
        low = np.where(axis[high] == widths, high, np.maximum(high - 1, 0))
        span = (axis[high] - axis[low]).astype(np.float64)
        fraction = np.where(span > 0, (widths - axis[low]) / np.where(span > 0, span, 1.0), 0.0)
        return low, high, fraction
