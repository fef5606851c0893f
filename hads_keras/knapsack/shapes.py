"""Synthetic problems with the shapes of the paper's models (no Keras).

Used by the tests and ``benchmarks/knapsack.py``. Importance is random,
sorted non-increasing (a heavy-tailed draw, as Taylor scores are). Shapes
follow "Hello Edge" (Zhang et al., 2017), the keyword-spotting models the
paper slices: input 49 x 10 MFCC, 12 classes.

Each builder returns a :class:`Problem` with "macs" and "params" terms.
"""

from __future__ import annotations

import numpy as np

from hads_keras.knapsack.problem import CostTerm, GroupSpec, Problem


def random_importance(width: int, rng: np.random.Generator, integer: bool = False):
    v = rng.lognormal(mean=0.0, sigma=1.0, size=width)
    if integer:
        v = np.ceil(v * 10)
    return np.sort(v)[::-1].copy()


def _groups(names_widths, rng, integer, min_width):
    return tuple(GroupSpec(n, random_importance(w, rng, integer), min_width)
                 for n, w in names_widths)


def dnn(hidden=(144, 144, 144), n_in=490, n_out=12, *, seed=0, integer=False,
        min_width=1) -> Problem:
    """Dense chain n_in -> hidden... -> n_out (DNN S: 144, DNN L: 436)."""
    rng = np.random.default_rng(seed)
    names = [f"dense_{i}" for i in range(len(hidden))]
    groups = _groups(zip(names, hidden), rng, integer, min_width)
    terms = [CostTerm(names[0], "macs", n_in, (names[0],)),
             CostTerm(names[0], "params", n_in + 1, (names[0],))]
    for a, b in zip(names[:-1], names[1:]):
        terms += [CostTerm(b, "macs", 1, (a, b)), CostTerm(b, "params", 1, (a, b)),
                  CostTerm(b, "params", 1, (b,))]
    terms += [CostTerm("logits", "macs", n_out, (names[-1],)),
              CostTerm("logits", "params", n_out, (names[-1],)),
              CostTerm("logits", "params", n_out, ())]
    return Problem(groups, tuple(terms))


def cnn(convs=((28, 10, 4, 40, 7), (30, 10, 4, 31, 2)), dense=(16, 128),
        n_out=12, *, seed=0, integer=False, min_width=1) -> Problem:
    """Conv2D chain, Flatten, Dense chain (CNN S: 28/30 filters; L: 60/76).

    ``convs``: (filters, kh, kw, out_h, out_w) per conv layer; input 1 channel.
    """
    rng = np.random.default_rng(seed)
    cn = [f"conv_{i}" for i in range(len(convs))]
    dn = [f"dense_{i}" for i in range(len(dense))]
    groups = _groups(list(zip(cn, [c[0] for c in convs])) + list(zip(dn, dense)),
                     rng, integer, min_width)
    terms = []
    prev = None
    for name, (f, kh, kw, oh, ow) in zip(cn, convs):
        k = oh * ow * kh * kw
        if prev is None:
            terms += [CostTerm(name, "macs", k, (name,)),
                      CostTerm(name, "params", kh * kw + 1, (name,))]
        else:
            terms += [CostTerm(name, "macs", k, (prev, name)),
                      CostTerm(name, "params", kh * kw, (prev, name)),
                      CostTerm(name, "params", 1, (name,))]
        prev = name
    flat = convs[-1][3] * convs[-1][4]  # Flatten: each channel is H*W rows
    for i, name in enumerate(dn):
        c = flat if i == 0 else 1
        terms += [CostTerm(name, "macs", c, (prev, name)),
                  CostTerm(name, "params", c, (prev, name)),
                  CostTerm(name, "params", 1, (name,))]
        prev = name
    terms += [CostTerm("logits", "macs", n_out, (prev,)),
              CostTerm("logits", "params", n_out, (prev,)),
              CostTerm("logits", "params", n_out, ())]
    return Problem(groups, tuple(terms))


def ds_cnn(width=64, blocks=4, out_hw=(25, 5), kernel=(10, 4), n_out=12, *,
           seed=0, integer=False, min_width=1) -> Problem:
    """DS-CNN: conv (1 -> width) then ``blocks`` x (depthwise 3x3, pointwise).

    DS-CNN S: width 64, 4 blocks, 25 x 5 maps; DS-CNN L: width 276, 5 blocks,
    25 x 10 maps. Groups: conv_0's filters (shared with depthwise_1) and each
    pointwise layer's filters (shared with the next depthwise / the pooling).
    """
    rng = np.random.default_rng(seed)
    hw = out_hw[0] * out_hw[1]
    kh, kw = kernel
    names = ["conv_0"] + [f"pointwise_{i + 1}" for i in range(blocks)]
    groups = _groups([(n, width) for n in names], rng, integer, min_width)
    terms = [CostTerm("conv_0", "macs", hw * kh * kw, ("conv_0",)),
             CostTerm("conv_0", "params", kh * kw + 1, ("conv_0",))]
    for i in range(blocks):
        g_in, g_out = names[i], names[i + 1]
        terms += [CostTerm(f"depthwise_{i + 1}", "macs", hw * 9, (g_in,)),
                  CostTerm(f"depthwise_{i + 1}", "params", 9 + 1, (g_in,)),
                  CostTerm(g_out, "macs", hw, (g_in, g_out)),
                  CostTerm(g_out, "params", 1, (g_in, g_out)),
                  CostTerm(g_out, "params", 1, (g_out,))]
    terms += [CostTerm("logits", "macs", n_out, (names[-1],)),
              CostTerm("logits", "params", n_out, (names[-1],)),
              CostTerm("logits", "params", n_out, ())]
    return Problem(groups, tuple(terms))


def paper_models(seed=0) -> dict:
    """The benchmark set: DNN S/L, CNN S/L, DS-CNN S/L."""
    return {
        "DNN-S": dnn((144, 144, 144), seed=seed),
        "DNN-L": dnn((436, 436, 436), seed=seed),
        "CNN-S": cnn(((28, 10, 4, 40, 7), (30, 10, 4, 31, 2)), (16, 128), seed=seed),
        "CNN-L": cnn(((60, 10, 4, 40, 7), (76, 10, 4, 16, 4)), (58, 128), seed=seed),
        "DS-CNN-S": ds_cnn(64, 4, (25, 5), seed=seed),
        "DS-CNN-L": ds_cnn(276, 5, (25, 10), seed=seed),
    }
