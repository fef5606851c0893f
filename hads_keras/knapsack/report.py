"""What a solve returns: slicing points per group and a report per subnetwork."""

from __future__ import annotations

import dataclasses
import json

import numpy as np


@dataclasses.dataclass
class StageReport:
    """One subnetwork of the plan.

    Attributes:
      index: subnetwork index (0 = full network).
      budget: absolute budget per resource.
      cost: exact cost per resource (sum of the cost terms at these widths).
      full_cost: the full network's cost per resource.
      objective: importance kept (sum over groups of the prefix sums).
      full_objective: importance of the full network.
      status: solver status of this stage (OPTIMAL, FEASIBLE, FIXED, ...).
      seconds: wall time of this stage's solve.
      bound: proven upper bound on this stage's optimum given the stage's own
        constraints (bounds from the neighbouring stage), when known.
      charged: cost per resource as equation 1 counts it (costs="paper").
    """

    index: int
    budget: dict
    cost: dict
    full_cost: dict
    objective: float
    full_objective: float
    status: str
    seconds: float
    bound: float | None = None
    charged: dict | None = None

    @property
    def gap(self) -> float | None:
        """Relative proven gap (bound - objective) / objective, if known."""
        if self.bound is None or self.objective <= 0:
            return None
        return max(0.0, (self.bound - self.objective) / self.objective)

    def budget_use(self, resource: str) -> float:
        """Exact cost / budget (1.0 = the budget is used completely)."""
        return self.cost[resource] / self.budget[resource]


@dataclasses.dataclass
class KnapsackResult:
    """Slicing points of every group for every subnetwork, plus the report.

    Attributes:
      widths: group name -> tuple of widths (index 0 = the largest
        subnetwork: the full width unless solved with include_full=False;
        non-increasing: the subnetworks are nested).
      stages: one :class:`StageReport` per subnetwork.
      method, solver, costs, eps: how it was solved.
      seconds: total wall time.
      bound: proven upper bound on the sum of ``objective`` over the solved
        subnetworks (all but a FIXED full one; joint method; for the heuristics the sum of stage bounds is not a
        bound on the nested optimum and this stays None).
      details: solver-specific facts (joint: CP-SAT's own status and bound,
        the relaxation bound, the heuristics' objectives).
    """

    widths: dict
    stages: list
    method: str
    solver: str
    costs: str
    eps: float
    seconds: float
    bound: float | None = None
    details: dict = dataclasses.field(default_factory=dict)

    @property
    def n_subnetworks(self) -> int:
        return len(self.stages)

    def width_matrix(self) -> np.ndarray:
        """[n_subnetworks, n_groups] slicing points."""
        return np.array([self.widths[n] for n in self.widths], dtype=np.int64).T

    def total_objective(self) -> float:
        """Importance kept, summed over the solved subnetworks (not a FIXED
        full network)."""
        return float(sum(s.objective for s in self.stages if s.status != "FIXED"))

    @property
    def gap(self) -> float | None:
        if self.bound is None:
            return None
        tot = self.total_objective()
        return max(0.0, (self.bound - tot) / tot) if tot > 0 else None

    def to_dict(self) -> dict:
        return {
            "method": self.method, "solver": self.solver, "costs": self.costs,
            "eps": self.eps, "seconds": self.seconds, "bound": self.bound,
            "gap": self.gap, "details": self.details,
            "widths": {k: list(map(int, v)) for k, v in self.widths.items()},
            "stages": [dict(dataclasses.asdict(s), gap=s.gap) for s in self.stages],
        }

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)

    def __str__(self) -> str:
        resources = list(self.stages[0].cost)
        head = ["sub"]
        for r in resources:
            head += [f"{r}", f"{r} %", "budget %"]
        head += ["importance %", "status", "gap", "time s"]
        rows = []
        for s in self.stages:
            row = [str(s.index)]
            for r in resources:
                row += [f"{s.cost[r]:,.0f}", f"{100 * s.cost[r] / s.full_cost[r]:.2f}",
                        f"{100 * s.budget[r] / s.full_cost[r]:.2f}"]
            kept = ("-" if s.full_objective <= 0
                    else f"{100 * s.objective / s.full_objective:.2f}")
            row += [kept, s.status,
                    "-" if s.gap is None else f"{100 * s.gap:.3f}%", f"{s.seconds:.3f}"]
            rows.append(row)
        cols = list(zip(head, *rows))
        wid = [max(len(c) for c in col) for col in cols]
        fmt = lambda r: "  ".join(v.rjust(w) for v, w in zip(r, wid))
        lines = [f"HADS knapsack: method={self.method} solver={self.solver} "
                 f"costs={self.costs} eps={self.eps} ({self.seconds:.2f} s)"]
        if self.gap is not None:
            lines[0] += f", proven gap {100 * self.gap:.3f}%"
        lines += [fmt(head), fmt(["-" * w for w in wid])] + [fmt(r) for r in rows]
        lines.append("slicing points:")
        nw = max(len(n) for n in self.widths)
        for n, w in self.widths.items():
            lines.append(f"  {n.ljust(nw)}  " + " ".join(f"{int(v):5d}" for v in w))
        return "\n".join(lines)
