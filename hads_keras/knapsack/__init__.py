"""Knapsack solvers that turn importance and budgets into slicing points.

Pure NumPy + OR-Tools (no Keras): build a :class:`Problem` (groups with
sorted importance, cost terms per layer and resource) and call
:func:`solve_problem`::

    from hads_keras.knapsack import solve_problem, shapes
    result = solve_problem(shapes.ds_cnn(276, 5, (25, 10)),
                           {"macs": [1.0, 0.75, 0.5, 0.25]}, method="bottom_up")
    print(result)           # table: MACs, % of full, importance kept, status, gap
    result.widths           # {"conv_0": (276, 231, ...), ...}

Methods: "bottom_up", "top_down" (one stage at a time) and "joint" (one
CP-SAT model of all stages, warm-started with both, with a proven gap).
Cost models: costs="exact" (bilinear, what the subnetwork really costs) or
costs="paper" (the paper's equation 1: each unit at full neighbour width).
Stage solvers:

  ======== ============== ==============================================
  costs    solver         guarantee / notes
  ======== ============== ==============================================
  exact    fptas (dflt)   (1 - eps) OPT; chain DP + Lagrangian, ms-s
  exact    dp             exact; integer importance only
  exact    cp-sat         exact given time; several resources (dflt then)
  exact    ip             the paper's Appendix A.1 IP on CP-SAT (slow)
  paper    fptas (dflt)   (1 - eps) OPT; Hertrich & Skutella profit DP
  paper    dp             exact profit DP; integer importance only
  paper    knapsack       OR-Tools branch and bound; several resources
  paper    cp-sat         exact (proven); prefix implications; several
                          resources
  ======== ============== ==============================================

The costs="paper" default was chosen by measurement, side by side in one
run of ``python benchmarks/knapsack.py --methods=/paper/ --repeats=3
--out=benchmarks/results/knapsack_paper.json`` (figures there and in the
README): the FPTAS and a plain CP-SAT take about the same time (DS-CNN L,
whole plan: 0.6-1.0 s each on 2 busy cores), CP-SAT proves every stage
optimal and the FPTAS stays within 4e-6 (relative) of it, so the FPTAS stays the
default; pass solver="cp-sat" for a proof of optimality. OR-Tools'
branch and bound is fastest on the CNNs but hits its limit on the wide
models (all units of a group weigh the same). Every solver gives the same
plan for any positive scale of the importance (it is divided by its
largest score first).

If TensorFlow was imported before this package, CP-SAT runs in a
TensorFlow-free child process (see ``_isolate``: they crash together).

Modules: ``problem`` (data and costs), ``knapsack01`` (equation 1: DP,
FPTAS, OR-Tools knapsack, CP-SAT), ``chain`` (exact bilinear costs: chain
DP with a (1 - eps) guarantee), ``cpsat`` (exact-cost CP-SAT stage, the
paper's depthwise IP, the joint nested model), ``drivers`` (bottom-up,
top-down, joint), ``report`` (result and table), ``shapes`` (synthetic
problems with the paper's model shapes).
"""

from hads_keras.knapsack.drivers import solve_problem, solve_stage
from hads_keras.knapsack.problem import (CostTerm, GroupSpec, PeakTerm, Problem,
                                         allowed_widths, resolve_targets)
from hads_keras.knapsack.report import KnapsackResult, StageReport
from hads_keras.knapsack import shapes  # noqa: F401  (synthetic problems)

__all__ = ["CostTerm", "GroupSpec", "PeakTerm", "Problem", "KnapsackResult", "StageReport",
           "allowed_widths", "resolve_targets", "solve_problem", "solve_stage"]
