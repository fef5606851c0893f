"""Peak activation memory of a subnetwork, as TFLite Micro's planner needs it.

TFLite Micro keeps every activation tensor of the int8 model in one arena
and plans it ahead (`GreedyMemoryPlanner`): a tensor occupies its bytes
from the operator that produces it (the model input: from the first
operator) to the last operator that reads it (a model output: to the end).
While an operator runs, its inputs, its output and every tensor produced
earlier and read later (a residual skip) are live at once; the arena must
hold the largest such set. Each tensor's bytes are linear in its group's
width (H * W * s bytes for an int8 feature map of s active channels;
tensors of fixed groups are constant), so the activation memory of a
subnetwork is

    max over operators k of  sum over tensors t live at k of  bytes_t(s)

a *peak* resource (`hads_keras.knapsack.PeakTerm`, resource "memory").

The operators are those the TFLite converter emits for the Keras graph, in
the Keras graph's topological order (the converter keeps it for the models
checked: DS-CNN, MobileNetV1, ResNet-8, squeeze-and-excite blocks). Where
the two differ, this module follows the converter:

* BatchNormalization right after a Conv/Dense/DepthwiseConv2D is folded
  into it (no tensor of its own); elsewhere it is one element-wise
  operator (the converter writes MUL and ADD: the same peak, as both
  tensors have the same bytes).
* ReLU / ReLU6 right after a convolution, Dense, pooling or element-wise
  merge whose output has no other reader is fused into it; a layer's own
  `activation="relu"` too. Other activations (softmax, hard swish,
  sigmoid) are one operator each.
* Dropout, noise and Identity layers vanish; a Flatten or Reshape of a
  1 x 1 map read only by a Dense vanishes (FULLY_CONNECTED reads it as it
  is), elsewhere it is a RESHAPE, which TFLite Micro runs as a copy (both
  tensors live).
* GlobalAveragePooling (MEAN) gets its int32 accumulators as a scratch
  buffer (4 bytes per output element, and two small index buffers), live
  while it runs, as TFLite Micro's reference kernel requests them. A ZeroPadding2D read only by a convolution is folded into
  it (MobileNet's stride-2 padding). A Rescaling with scale and offset is
  a MUL and an ADD.
* Conv1D and 1-D pooling run as 2-D operators on an expanded tensor: one
  RESHAPE where a run of them starts and one where it ends.

Arena buffers are aligned to 16 bytes (`ALIGNMENT`, TFLite Micro's
`MicroArenaBufferAlignment`): a tensor of constant size is rounded up
exactly, a width-dependent one gets `ALIGNMENT - 1` bytes of margin, so the
model is an upper bound of what an optimal planner needs. The greedy
planner is not always optimal, and the arena also holds persistent data
(tensor structs, per-channel quantization parameters) in its tail:
`benchmarks/memory.py` measures both against this model in the
`tflite-micro` runtime (README section "Budgets").
"""

import dataclasses
import math

import keras

from hads_keras import _keras_compat
from hads_keras import graph as graph_lib
from hads_keras.knapsack.problem import CostTerm, PeakTerm

RESOURCE = "memory"
ALIGNMENT = 16  # bytes; TFLite Micro's MicroArenaBufferAlignment()

# Layers that vanish in the converted model: their output is their input.
_VANISHING = (
    keras.layers.Dropout, keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D, keras.layers.GaussianNoise,
    keras.layers.GaussianDropout, keras.layers.ActivityRegularization,
    keras.layers.Identity,
)
# TFLite operators with a fused activation function (FULLY_CONNECTED,
# CONV_2D, DEPTHWISE_CONV_2D, pooling, ADD / SUB / MUL).
_FUSES_ACTIVATION = ("dense", "conv", "depthwise", "pool", "merge")
_FUSABLE_ACTIVATIONS = ("relu", "relu6")
_ONE_D = (keras.layers.Conv1D, keras.layers.MaxPooling1D,
          keras.layers.AveragePooling1D)
_MEAN = (keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D)


@dataclasses.dataclass(frozen=True)
class Tensor:
    """An activation tensor of the int8 model: `const + sum coef * width`
    bytes (`coefs`: (group, bytes per unit) pairs), live from operator
    `first` to operator `last`."""

    name: str
    const: int
    coefs: tuple
    first: int
    last: int
    scratch: bool = False  # an operator's scratch buffer, not in the file

    def nbytes(self, widths, alignment=ALIGNMENT):
        """Bytes at `widths` (group -> width), rounded up to the alignment."""
        raw = self.const + sum(c * widths[g] for g, c in self.coefs)
        return -(-raw // alignment) * alignment


@dataclasses.dataclass(frozen=True)
class Operator:
    """One operator of the converted model and the tensors live while it runs."""

    name: str
    live: tuple

    def nbytes(self, widths, alignment=ALIGNMENT, scratch=True):
        return sum(t.nbytes(widths, alignment) for t in self.live
                   if scratch or not t.scratch)


class _Buffer:
    """A tensor being traced: its bytes, lifetime, and what produced it."""

    def __init__(self, name, form, first, producer, fusable):
        self.name, self.form, self.first, self.last = name, form, first, first
        self.producer = producer      # "dense", "conv", "pool", ... or None
        self.fusable = fusable        # may still absorb a ReLU
        self.expanded = False         # held as a 4-D tensor by a 1-D run
        self.scratch = False


def operators(model, keep=()):
    """The operators of the int8 model of `model`, each with its live tensors.

    Args:
        model: a built Sequential/Functional model (Keras or HADS layers, or
            a NestedModel).
        keep: groups or layers kept whole (as `hads_keras.solve(keep=...)`).

    Returns:
        A list of `Operator`, in execution order.
    """
    network = _keras_compat.unwrap(model)
    analysis = graph_lib.analyze(network, keep)
    functional = _keras_compat.as_functional(network)
    tracer = _Tracer(analysis)
    nodes = _keras_compat.ordered_nodes(functional)
    for node in nodes:
        for t in node.input_tensors:
            tracer.readers.setdefault(id(t), []).append(node.operation)
    for node in nodes:
        tracer.visit(node)
    outputs = [tracer.buffer_of[id(t)] for t in functional.outputs]
    return tracer.finish(outputs)


def planned_arena(model, widths=None, alignment=ALIGNMENT):
    """The bytes TFLite Micro's `GreedyMemoryPlanner` lays the activation
    tensors of one subnetwork out in (the arena's head), simulated.

    The greedy planner places the largest tensor first (equal sizes: the
    later tensor first, as its in-place sort leaves them), each at the
    lowest offset free during its lifetime. When widths fall and rise
    again it can leave gaps, and then needs more than the largest set of
    tensors live at once (`activation_memory`); `solve(memory_limit=...)`
    checks its plans with this simulation.
    """
    return arena_function(model, alignment)(widths)


def arena_function(model, alignment=ALIGNMENT):
    """`planned_arena` of `model` as a function of the widths ({group:
    width}, groups not given: full), tracing the model once for many
    calls (bisections, sweeps)."""
    ops = operators(model)
    full = {g.name: g.width for g in graph_lib.analyze(
        _keras_compat.unwrap(model)).sliceable}
    return lambda widths=None: _greedy_plan(ops, dict(full, **(widths or {})), alignment)


def _greedy_plan(ops, widths, alignment):
    tensors = list(dict.fromkeys(t for op in ops for t in op.live))
    sizes = [t.nbytes(widths, alignment) for t in tensors]
    order = sorted(range(len(tensors)), key=lambda i: (-sizes[i], -i))
    placed = []   # (offset, size, first, last)
    for i in order:
        t = tensors[i]
        offset = 0
        for other in sorted(p for p in placed if p[2] <= t.last and t.first <= p[3]):
            if other[0] - offset >= sizes[i]:
                break
            offset = max(offset, other[0] + other[1])
        placed.append((offset, sizes[i], t.first, t.last))
    return max((p[0] + p[1] for p in placed), default=0)


def memory_terms(model, keep=(), alignment=ALIGNMENT):
    """One `PeakTerm` (resource "memory") per operator: the bytes of the
    tensors live while it runs, linear in the group widths (see the module
    docstring for the alignment margin)."""
    out = []
    for op in operators(model, keep):
        const, coefs = 0, {}
        for t in op.live:
            if t.coefs:
                const += t.const + alignment - 1
            else:
                const += -(-t.const // alignment) * alignment
            for group, coef in t.coefs:
                coefs[group] = coefs.get(group, 0) + coef
        terms = [CostTerm(op.name, RESOURCE, coef, (group,))
                 for group, coef in coefs.items()]
        if const:
            terms.append(CostTerm(op.name, RESOURCE, const))
        out.append(PeakTerm(op.name, RESOURCE, tuple(terms)))
    return out


def activation_memory(model, widths=None, alignment=ALIGNMENT):
    """Peak activation bytes of one subnetwork of `model`: `widths` maps
    sliced groups to widths (groups not given: full). Returns
    `{"bytes": ..., "operator": ...}`, the operator where the peak is."""
    full = {g.name: g.width for g in graph_lib.analyze(
        _keras_compat.unwrap(model)).sliceable}
    return _peak(operators(model), dict(full, **(widths or {})), alignment)


def peak_memory(model, plan, alignment=ALIGNMENT):
    """`activation_memory` of every subnetwork of `plan` on `model` (the
    model the plan was solved for, or its nested model), index 0 =
    subnetwork 0."""
    ops = operators(model)
    return [_peak(ops, plan.subnetwork_widths(k), alignment)
            for k in range(plan.num_subnetworks)]


def _peak(ops, widths, alignment):
    size, name = max(((op.nbytes(widths, alignment), op.name) for op in ops),
                     default=(0, None))
    return {"bytes": int(size), "operator": name}


class _Tracer:
    """Walks the Keras graph and emits the converted model's operators."""

    def __init__(self, analysis):
        self.analysis = analysis
        self.full = {g.name: g.width for g in analysis.sliceable}
        self.fixed_layers = {f.layer for f in analysis.fixed_layers}
        self.readers = {}   # id(tensor) -> the layers that read it
        self.buffer_of = {}
        self.buffers = []
        self.ops = []   # (name, [buffers read])

    # -- bytes ---------------------------------------------------------------
    def _form(self, tensor, group):
        """Bytes of `tensor` when its channel axis holds units of `group`
        (None: a fixed tensor)."""
        elements = math.prod(tensor.shape[1:])
        if group is None or group not in self.full:
            return (elements, ())
        return (0, ((group, elements // self.full[group]),))

    def _passed_form(self, node, tensor):
        """The form of an output of a layer that keeps its inputs' channels
        (channel-wise, pooling, Flatten, merges, Concatenate)."""
        elements = math.prod(tensor.shape[1:])
        if isinstance(node.operation, keras.layers.Concatenate):
            const, coefs = 0, {}
            for t in node.input_tensors:
                c, pairs = self.buffer_of[id(t)].form
                const += c
                for g, k in pairs:
                    coefs[g] = coefs.get(g, 0) + k
            return (const, tuple(coefs.items()))
        for t in node.input_tensors:
            _, pairs = self.buffer_of[id(t)].form
            if len(pairs) == 1 and t.shape[-1] == tensor.shape[-1] or (
                    len(pairs) == 1 and len(tensor.shape) == 2):
                group = pairs[0][0]
                return (0, ((group, elements // self.full[group]),))
        return (elements, ())

    # -- operators -------------------------------------------------------------
    def _emit(self, name, reads, tensor, form, producer, fusable=False):
        index = len(self.ops)
        self.ops.append((name, reads))
        for b in reads:
            b.last = index
        out = _Buffer(name, form, index, producer, fusable)
        self.buffers.append(out)
        self.buffer_of[id(tensor)] = out
        return out

    def _scratch(self, output):
        """MEAN's scratch buffers (int32 accumulators per output element,
        input dimensions, axes), live while it runs: each its own aligned
        buffer, the small ones as one constant (16 + 16 bytes)."""
        const, pairs = output.form
        index = len(self.ops) - 1
        accumulators = _Buffer(f"{output.name}:scratch", (
            4 * const, tuple((g, 4 * c) for g, c in pairs)), index, None, False)
        indices = _Buffer(f"{output.name}:scratch_axes", (2 * ALIGNMENT, ()),
                          index, None, False)
        accumulators.scratch = indices.scratch = True
        self.buffers.extend([accumulators, indices])

    def _alias(self, tensor, buffer):
        self.buffer_of[id(tensor)] = buffer

    def _reshape_between(self, name, buffer, expanded):
        """A RESHAPE (a copy in TFLite Micro) into or out of a 1-D run."""
        index = len(self.ops)
        self.ops.append((f"{name}:reshape", [buffer]))
        buffer.last = index
        out = _Buffer(f"{name}:reshape", buffer.form, index, None, False)
        out.expanded = expanded
        self.buffers.append(out)
        return out

    def visit(self, node):
        layer = node.operation
        outputs = node.output_tensors
        if isinstance(layer, keras.layers.InputLayer) or not node.input_tensors:
            for t in outputs:
                b = _Buffer(layer.name, self._form(t, None), 0, None, False)
                self.buffers.append(b)
                self.buffer_of[id(t)] = b
            return
        reads = [self.buffer_of[id(t)] for t in node.input_tensors]
        # 1-D layers need the expanded 4-D tensor, layers that act on every
        # element take either, the others (Flatten, Dense, GlobalPooling1D)
        # need it squeezed back.
        expanded = (True if isinstance(layer, _ONE_D) else
                    None if _acts_per_element(layer) else False)
        for i, b in enumerate(reads):
            if expanded is not None and b.expanded != expanded:
                reads[i] = self._reshape_between(layer.name, b, expanded)
        if expanded is None:
            expanded = reads[0].expanded
        single = len(reads) == 1 and len(self.readers[id(node.input_tensors[0])]) == 1
        wiring = self.analysis.wiring.get(layer.name)
        kind = wiring.kind if wiring is not None else None
        out = outputs[0]
        if isinstance(layer, _VANISHING) or _is_linear(layer):
            return self._alias(out, reads[0])
        if kind == "batchnorm" or isinstance(layer, keras.layers.BatchNormalization):
            if single and reads[0].producer in ("dense", "conv", "depthwise") \
                    and reads[0].fusable:
                return self._alias(out, reads[0])
            b = self._emit(layer.name, reads, out, self._passed_form(node, out), "merge")
            b.expanded = expanded
            return
        activation = _activation_name(layer)
        if activation is not None and kind is None:  # an activation layer
            if activation in _FUSABLE_ACTIVATIONS and single and \
                    reads[0].producer in _FUSES_ACTIVATION and reads[0].fusable:
                reads[0].fusable = False
                return self._alias(out, reads[0])
            b = self._emit(layer.name, reads, out, self._passed_form(node, out), None)
            b.expanded = expanded
            return
        if isinstance(layer, (keras.layers.Flatten, keras.layers.Reshape)) and \
                self._only_reader_is(out, keras.layers.Dense) and \
                math.prod(node.input_tensors[0].shape[1:-1]) == 1:
            return self._alias(out, reads[0])
        if isinstance(layer, keras.layers.ZeroPadding2D) and self._only_reader_is(
                out, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            return self._alias(out, reads[0])
        if kind in ("dense", "conv1d", "conv2d", "depthwise"):
            group = wiring.in_group if kind == "depthwise" else wiring.out_group
            producer = {"dense": "dense", "depthwise": "depthwise"}.get(kind, "conv")
            b = self._emit(layer.name, reads, out, self._form(out, group), producer,
                           fusable=True)
        else:
            producer = ("pool" if "Pooling" in type(layer).__name__ else
                        "merge" if len(reads) > 1 else None)
            if producer == "pool" and "Global" in type(layer).__name__:
                producer = None  # MEAN / REDUCE_MAX: no fused activation
            form = (self._passed_form(node, out) if layer.name not in self.fixed_layers
                    else (math.prod(out.shape[1:]), ()))
            if _rescales_and_shifts(layer):  # MUL, then ADD
                reads = [self._emit(f"{layer.name}:mul", reads, out, form, None)]
            b = self._emit(layer.name, reads, out, form, producer,
                           fusable=producer is not None)
            if isinstance(layer, _MEAN):
                self._scratch(b)
            if layer.weights and layer.name not in self.analysis.wiring:
                b.producer, b.fusable = None, False
        b.expanded = expanded
        own = _activation_name(layer, own=True)
        if own in _FUSABLE_ACTIVATIONS and b.fusable:
            b.fusable = False
        elif own not in (None, "linear"):
            b2 = self._emit(f"{layer.name}:{own}", [b], out, b.form, None)
            b2.expanded = b.expanded

    def _only_reader_is(self, tensor, classes):
        """True when `tensor`'s one reader is a layer of `classes`."""
        readers = self.readers.get(id(tensor), [])
        return len(readers) == 1 and isinstance(readers[0], classes)

    def finish(self, outputs):
        outputs = [self._reshape_between("output", b, False) if b.expanded else b
                   for b in outputs]
        end = len(self.ops) - 1
        for b in outputs:
            b.last = end
        tensors = [Tensor(b.name, b.form[0], b.form[1], b.first, b.last, b.scratch)
                   for b in self.buffers]
        return [Operator(name, tuple(t for t in tensors if t.first <= k <= t.last))
                for k, (name, _) in enumerate(self.ops)]


def _activation_name(layer, own=False):
    """The activation a layer applies: for activation layers (own=False)
    the function they are, for Dense/Conv (own=True) their `activation`."""
    if own:
        if not isinstance(layer, (keras.layers.Dense, keras.layers.Conv1D,
                                  keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            return None
        return getattr(layer.activation, "__name__", str(layer.activation))
    if isinstance(layer, keras.layers.ReLU):
        plain = (not layer.negative_slope and not layer.threshold)
        if plain and layer.max_value is None:
            return "relu"
        if plain and layer.max_value == 6:
            return "relu6"
        return "relu_variant"
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    if isinstance(layer, (keras.layers.Activation, keras.layers.LeakyReLU,
                          keras.layers.ELU)):
        fn = getattr(layer, "activation", None)
        return getattr(fn, "__name__", type(layer).__name__.lower())
    return None


def _acts_per_element(layer):
    """Layers whose converted operators work on a tensor of any rank."""
    return (isinstance(layer, _VANISHING + graph_lib._ELEMENTWISE_MERGE + (
        keras.layers.BatchNormalization,)) or _activation_name(layer) is not None
        or not isinstance(layer, keras.layers.Layer))


def _rescales_and_shifts(layer):
    return (isinstance(layer, keras.layers.Rescaling)
            and layer.offset != 0 and layer.scale != 1)


def _is_linear(layer):
    return (isinstance(layer, keras.layers.Activation)
            and _activation_name(layer) == "linear")
