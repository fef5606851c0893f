"""MACs and parameters of any subnetwork, as functions of the group widths.

Each sliceable layer contributes terms `coef * prod(widths of its groups)`
(fixed groups are folded into `coef`), so costs are exact, bilinear in
neighbouring widths; a layer whose output joins the group it reads (the
projection of a depthwise-only block added to the block input) gives a
term quadratic in that one width, `coef * s_g * s_g`:

* Dense: in_rows * out MACs, in_rows * out + out parameters (bias);
  behind a Flatten, in_rows = H*W*channels.
* Conv2D / Conv1D: output positions * kernel size * in * out MACs;
  kernel size * in * out + out params.
* DepthwiseConv2D: H_out * W_out * kh * kw * channels * multiplier MACs.
* BatchNormalization: 4 parameters per channel (gamma, beta, moving mean and
  variance, as `keras.Model.count_params` counts them), no MACs.
* A layer reading a concatenation: the terms above once per segment (its
  input rows of that segment's group), so costs stay bilinear.

* Layers with weights that HADS never slices (on groups kept whole or on
  the model input: grouped convolutions, recurrent layers, Normalization,
  ...): their constant MACs and parameters (`graph.FixedLayer`).

Activations, pooling and element-wise merges are not counted as MACs.
"""

import math

from hads_keras import graph as graph_lib
from hads_keras.knapsack.problem import CostTerm

RESOURCES = ("macs", "params")


def cost_terms(model_or_analysis, resources=RESOURCES):
    """Cost terms of a model, with fixed groups folded into the coefficients."""
    analysis = _analysis(model_or_analysis)
    model = analysis.model
    fixed = {g.name: g.width for g in analysis.groups if g.fixed}
    terms = []

    def add(layer, resource, coef, *group_names):
        if resource not in resources:
            return
        sliced = []
        for name in group_names:
            if name in fixed:
                coef *= fixed[name]
            else:
                sliced.append(name)
        if coef:
            terms.append(CostTerm(layer, resource, coef, tuple(sliced)))

    for name, wiring in analysis.wiring.items():
        layer = model.get_layer(name)
        # One set of terms per input segment (one segment unless the input
        # is a concatenation); the bias terms do not depend on the input.
        for segment in wiring.in_segments:
            in_group, in_mult = segment.group, segment.multiplier
            if wiring.kind == "dense":
                positions = math.prod(layer.output.shape[1:-1])  # Dense on rank > 2
                rows = wiring.in_spatial * in_mult
                add(name, "macs", positions * rows, in_group, wiring.out_group)
                add(name, "params", rows, in_group, wiring.out_group)
            elif wiring.kind in ("conv1d", "conv2d"):
                out_hw = math.prod(layer.output.shape[1:-1])
                kernel = math.prod(layer.kernel_size)
                add(name, "macs", out_hw * kernel * in_mult, in_group, wiring.out_group)
                add(name, "params", kernel * in_mult, in_group, wiring.out_group)
            elif wiring.kind == "depthwise":
                out_hw = math.prod(layer.output.shape[1:3])
                kernel = math.prod(layer.kernel_size)
                channels = in_mult * layer.depth_multiplier
                add(name, "macs", out_hw * kernel * channels, in_group)
                add(name, "params", kernel * channels, in_group)
                if layer.use_bias:
                    add(name, "params", channels, in_group)
            elif wiring.kind == "batchnorm":
                per_channel = 2 + int(layer.scale) + int(layer.center)
                add(name, "params", per_channel * in_mult, in_group)
        if wiring.kind in ("dense", "conv1d", "conv2d") and layer.use_bias:
            add(name, "params", 1, wiring.out_group)
    for fixed_layer in analysis.fixed_layers:
        add(fixed_layer.layer, "macs", fixed_layer.macs)
        add(fixed_layer.layer, "params", fixed_layer.params)
    return terms


def evaluate(terms, widths):
    """Sum the terms for `widths` (group name -> width) per resource."""
    totals = {}
    for term in terms:
        value = term.coef * math.prod(widths[g] for g in term.groups)
        totals[term.resource] = totals.get(term.resource, 0) + value
    return {r: int(round(v)) for r, v in totals.items()}


def evaluate_per_subnetwork(terms, widths):
    """`evaluate` for every subnetwork; `widths`: group -> widths per subnetwork."""
    count = len(next(iter(widths.values())))
    return [evaluate(terms, {g: w[k] for g, w in widths.items()})
            for k in range(count)]


def full_widths(model_or_analysis):
    analysis = _analysis(model_or_analysis)
    return {g.name: g.width for g in analysis.sliceable}


def subnetwork_costs(model, plan, resources=RESOURCES):
    """Per subnetwork, a dict resource -> cost (index 0 = full network).

    Costs cover every layer with weights: the Dense/Conv/DepthwiseConv2D/
    BatchNormalization layers a plan slices, and the constant cost of those
    it never slices.
    """
    analysis = _analysis(model)
    plan.check_matches(analysis)
    return evaluate_per_subnetwork(cost_terms(analysis, resources),
                                   {g: plan.widths(g) for g in plan.groups})


def model_costs(model, resources=RESOURCES):
    """Costs of the full model (no plan needed)."""
    analysis = _analysis(model)
    return evaluate(cost_terms(analysis, resources), full_widths(analysis))


def _analysis(model_or_analysis):
    if isinstance(model_or_analysis, graph_lib.GraphAnalysis):
        return model_or_analysis
    from hads_keras import _keras_compat
    return graph_lib.analyze(_keras_compat.unwrap(model_or_analysis))
