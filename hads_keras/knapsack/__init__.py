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
  paper    cp-sat         prefix implications; several resources
  ======== ============== ==============================================

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
from hads_keras.knapsack.problem import (CostTerm, GroupSpec, Problem,
                                         allowed_widths, resolve_targets)
from hads_keras.knapsack.report import KnapsackResult, StageReport
from hads_keras.knapsack import shapes  # noqa: F401  (synthetic problems)

__all__ = ["CostTerm", "GroupSpec", "Problem", "KnapsackResult", "StageReport",
           "allowed_widths", "resolve_targets", "solve_problem", "solve_stage"]
