"""Knapsack solvers that turn importance and budgets into slicing points.

Pure NumPy + OR-Tools (no Keras): build a :class:`Problem` (groups with
sorted importance, cost terms per layer and resource) and call
:func:`solve_problem`::

    from hads_keras.knapsack import solve_problem, shapes
    result = solve_problem(shapes.ds_cnn(276, 5, (25, 10)),
                           {"macs": [1.0, 0.75, 0.5, 0.25]}, method="bottom_up")
    print(result)           # table: MACs, % of full, importance kept, status, gap
    result.widths           # {"conv_0": (276, 231, ...), ...}

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
