"""The graph and the backward engine.

Recording: ndcore's dispatcher calls `record` after every differentiable op whose inputs
require grad (see ndcore's Note [One dispatch point]); it builds a `Node` holding the op's
derivative formula (generated from the op table), the tensors the formula reads and the
version each had. Backward: a topological pass over the nodes reachable from the roots,
newest first, summing gradients per node output (Kahn's algorithm, like micrograd's
`backward` with fan-in), then calling each node's formula.
"""
from __future__ import annotations

import heapq
import sys
import traceback
import weakref

import ndcore as nd
from ndcore import _C

from ._derivatives_gen import FORMULAS, RESULT_NAMES
from ._helpers import _sum_to

_next_seq = _C._next_node_seq  # shared with the nodes ndcore builds (Note [Autograd fast recorder])
_saved_hooks: list = []  # stack of (pack, unpack) from saved_tensors_hooks
_anomaly = {"on": False, "check_nan": True}


_NODE_NAMES: dict[str, str] = {}


def _node_name(op: str) -> str:
    name = _NODE_NAMES.get(op)
    if name is None:
        base = op.split(".")[0].strip("_")
        name = _NODE_NAMES[op] = "".join(p.capitalize() for p in base.split("_")) + "Backward0"
    return name


class _Saved:
    """A tensor a formula reads later, with the version it had when saved.

    ndcore builds these too, filling the slots directly (Note [Autograd fast recorder]): a new
    field must be added there as well."""

    __slots__ = ("tensor", "version", "op", "name", "out_nr", "packed", "unpack_hook")

    def __init__(self, tensor, op, name, is_output=False, out_nr=None, metadata_only=False):
        self.op, self.name = op, name
        self.unpack_hook = None
        if _saved_hooks:  # saved_tensors_hooks (e.g. checkpoint) decide how the value is kept
            pack, self.unpack_hook = _saved_hooks[-1]
            self.packed = pack(tensor)
            self.tensor, self.version, self.out_nr = None, None, None
            return
        self.version = None if metadata_only else tensor._version
        # Holding an output itself would make a cycle through C++ state that Python's GC cannot
        # see (output -> grad_fn -> saved output): keep a detached alias, and re-attach it to
        # the node when a higher-order backward needs its graph (as torch's SavedVariable does).
        self.out_nr = out_nr if is_output else None
        self.tensor = tensor._detach_alias() if is_output else tensor

    def unpack(self, node=None):
        if self.unpack_hook is not None:
            return self.unpack_hook(self.packed)
        t = self.tensor
        if self.out_nr is not None and node is not None and _C.is_grad_enabled():
            t = t._detach_alias()
            t._set_requires_grad_raw(True)
            t.grad_fn = node
            t._ag["out_nr"] = self.out_nr
        if self.version is not None and t._version != self.version:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an inplace "
                f"operation: [{self.op}] input '{self.name}' of shape {tuple(t.shape)} is at version "
                f"{t._version}; expected version {self.version} instead.")
        return t


class Node:
    """One recorded op: its formula, where the input gradients go, and hooks."""

    # hooks are rare: the containers are created on first registration
    pre_hooks: dict = {}
    post_hooks: tuple = ()
    stack = None
    released = False

    def __init__(self, name, next_edges):
        self._name = name
        self.next_edges = next_edges  # per tensor input: (node, out_nr) or None
        self.seq = _next_seq()
        if _anomaly["on"]:
            self.stack = traceback.format_stack()[:-3]

    def release(self):
        """Frees what backward needed (saved tensors) once it has run without retain_graph."""

    def _own_pre_hooks(self) -> dict:
        if "pre_hooks" not in self.__dict__:
            self.pre_hooks = {}
        return self.pre_hooks

    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<{self._name} object at {hex(id(self))}>"

    @property
    def next_functions(self):
        return tuple((e[0], e[1]) if e is not None else (None, 0) for e in self.next_edges)

    def register_hook(self, fn):
        """fn(grad_inputs, grad_outputs) after this node ran; may return new grad_inputs."""
        if "post_hooks" not in self.__dict__:
            self.post_hooks = []
        self.post_hooks.append(fn)
        return _Handle(self.post_hooks, fn)

    def register_prehook(self, fn):
        """fn(grad_outputs) before this node runs; may return new grad_outputs."""
        hooks = self._own_pre_hooks().setdefault(-1, [])
        hooks.append(fn)
        return _Handle(hooks, fn)


class OpNode(Node):
    """A recorded table op. Built on every differentiable op: usually by ndcore itself from the
    op's plan (`_fast_plan`; Note [Autograd fast recorder] in ndcore's hooks.cpp), else by
    `record`, which fills it in place (no constructor frame). Its fields are slots (an instance
    dict is only made when a hook or anomaly mode adds to it), and the saved inputs and results
    are two plain lists."""

    __slots__ = ("_name", "next_edges", "seq", "op", "formula", "input_names", "needs", "attrs", "out_meta",
                 "saved_inputs", "saved_results")

    @property
    def saved(self):
        if self.released:
            return None
        return {"inputs": self.saved_inputs, "results": self.saved_results}

    def apply(self, grads):
        if self.released:
            raise RuntimeError(
                f"Trying to backward through the graph a second time (or directly access saved tensors after they "
                f"have already been freed): [{self.op}] saved intermediate values of the graph are freed when you call "
                f".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the graph "
                f"a second time.")
        inputs = [s.unpack() if type(s) is _Saved else s for s in self.saved_inputs]
        results = self.saved_results
        if results is not _NO_RESULTS and any(s is not None for s in results):
            results = [None if s is None else s.unpack(self) for s in results]
        return self.formula(grads, inputs, self.attrs, results, self.needs)

    def release(self):
        self.saved_inputs = self.saved_results = None
        self.released = True


class CopySlices(Node):
    """The new grad_fn of a base after an in-place op wrote through one of its views.

    Backward: the base's gradient is cloned; the view's region of it is run through the in-place
    op's own node; the gradient for the view's old contents is written back into that region and
    the whole flows on to the base's previous grad_fn (torch's CopySlices)."""

    def __init__(self, base_edge, op_node, target_index, view_geometry, base_meta):
        edges = [base_edge] + [e for i, e in enumerate(op_node.next_edges) if i != target_index]
        super().__init__("CopySlices", edges)
        self.op_node, self.target_index = op_node, target_index
        self.view_geometry, self.out_meta = view_geometry, [base_meta]

    def apply(self, grads):
        size, stride, offset = self.view_geometry
        result = grads[0].clone()
        region = result.as_strided(size, stride, offset)
        op_grads = list(self.op_node.apply([region.clone()]))
        own = op_grads.pop(self.target_index)
        if own is None:
            region.zero_()
        else:
            region.copy_(own)
        return [result] + op_grads

    def release(self):
        self.op_node.release()
        self.released = True


class AccumulateGrad(Node):
    """Sink for a leaf: runs the leaf's hooks, then adds into ``.grad`` (or captures it).

    One per leaf, cached on the leaf; it refers back to the leaf weakly, so the pair forms no
    cycle through C++ state the garbage collector cannot see."""

    def __init__(self, tensor):
        super().__init__("AccumulateGrad", [])
        self._variable = weakref.ref(tensor)

    @property
    def variable(self):
        return self._variable()


class _Handle:
    def __init__(self, container, item):
        self._container, self._item = container, item

    def remove(self):
        try:
            self._container.remove(self._item)
        except ValueError:
            pass


def edge_of(t):
    if t is None or not t.requires_grad:
        return None
    fn = t.grad_fn
    ag = t._ag
    if fn is None:
        acc = ag.get("acc")
        if acc is None or acc.variable is not t:
            acc = ag["acc"] = AccumulateGrad(t)
        return (acc, 0)
    return (fn, ag.get("out_nr", 0))


# ---- recording (called from ndcore's dispatcher) ---------------------------------------------
_pending_inplace: list = []
_new_node = object.__new__
_OP_INFO: dict = {}  # op -> _op_info(FORMULAS[op])
_NO_RESULTS = (None,)  # the results of an op whose formula reads none (formulas only read them)


def record_pre(op, inputs, attrs):
    """Before an in-place op: refuse leaves, save the value the formula will need."""
    target = inputs[0]
    if target.requires_grad and target.grad_fn is None:
        raise RuntimeError(f"[{op}_] a leaf Variable that requires grad is being used in an in-place operation.")
    base = target._base
    if base is not None and base.requires_grad and base.grad_fn is None:
        raise RuntimeError(f"[{op}_] a view of a leaf Variable that requires grad is being used in an in-place operation.")
    entry = FORMULAS.get(op)
    old = None
    if entry is not None and "self" in entry[2]:
        old = target.detach().clone()  # detached: cloning it is not recorded
    _pending_inplace.append((old, target.grad_fn, target._ag.get("out_nr", 0), target.requires_grad))


def _op_info(op, entry):
    """What `record` needs of a formula entry, computed once per op (and again if the entry is
    replaced through register_formula)."""
    formula, names, uses, list_names, meta_only = entry
    uses_set = frozenset(uses)
    read_results = uses_set - set(names)
    reads_results = bool(read_results)
    result_names = RESULT_NAMES.get(op)
    if reads_results and result_names is not None and "result" not in read_results:
        # only the outputs the formula reads are saved and version-checked
        reads_results = frozenset(k for k, n in enumerate(result_names) if n in read_results)
    plan = None  # (position, name, metadata_only) of each saved input, for ops without list inputs
    if not list_names:
        plan = tuple((k, n, n in meta_only) for k, n in enumerate(names) if n in uses_set)
    return (entry, formula, names, uses_set, meta_only, reads_results, plan, list_names)


def _fast_plan(op):
    """What ndcore needs to build `op`'s node without calling `record` (its Note [Autograd fast
    recorder]), or ``(entry,)`` when only `record` can: ops with list inputs and ``copy_``."""
    entry = FORMULAS.get(op)
    info = _OP_INFO.get(op)
    if info is None or info[0] is not entry:
        info = _OP_INFO[op] = _op_info(op, entry)
    _, formula, names, _uses, _meta_only, reads_results, plan, _lists = info
    if plan is None or op == "_copy_from":
        return (entry,)
    if reads_results is True:
        results = True
    elif reads_results:
        results = tuple(sorted(reads_results))
    else:
        results = None
    return (entry, _node_name(op), formula, names, plan, results)


def install_fast_recorder():
    _C._set_autograd_fast_recorder((OpNode, _Saved, FORMULAS, _saved_hooks, _anomaly, _fast_plan, _NO_RESULTS))


def record(op, inputs, attrs, outputs, inplace, edges, needs, meta):
    """Builds the node of one op; ndcore installs it as the outputs' grad_fn. See ndcore's Note
    [Autograd hook protocol] for the arguments (edges, needs and meta are read in C++)."""
    entry = FORMULAS.get(op)
    pre = _pending_inplace.pop() if inplace and _pending_inplace else None
    if entry is None:
        raise RuntimeError(f"[{op}] has no derivative formula in the op table but an input requires grad")
    info = _OP_INFO.get(op)
    if info is None or info[0] is not entry:
        info = _OP_INFO[op] = _op_info(op, entry)
    _, formula, names, uses, meta_only, reads_results, plan, list_names = info
    if True in edges:  # leaves seen for the first time get their AccumulateGrad here
        for k, e in enumerate(edges):
            if e is True:
                edges[k] = edge_of(inputs[k])
    if pre is not None:
        _, old_fn, old_nr, old_req = pre
        edges[0] = (old_fn, old_nr) if old_fn is not None else None
        needs[0] = old_req
    if op == "_copy_from" and outputs and outputs[0].requires_grad and outputs[0].grad_fn is None:
        raise RuntimeError("[copy_] a leaf Variable that requires grad is being used in an in-place operation.")
    saved_inputs = [None] * len(inputs)
    if plan == ():  # the formula reads no input (add, sub, ...)
        pass
    elif plan is not None:
        for k, name, metadata_only in plan:
            t = inputs[k]
            if t is None:
                continue
            if inplace and k == 0:
                saved_inputs[0] = pre[0] if pre is not None else None
            else:
                saved_inputs[k] = _Saved(t, op, name, metadata_only=metadata_only)
    else:
        flat_names = [n for n in names for _ in range(attrs[n] if n in list_names else 1)]
        for k, t in enumerate(inputs):
            name = flat_names[k]
            if t is None or name not in uses:
                continue  # the formula never reads it: keep nothing alive
            if inplace and k == 0:
                saved_inputs[0] = pre[0] if pre is not None else None
            else:
                saved_inputs[k] = _Saved(t, op, name, metadata_only=name in meta_only)
    if reads_results is True:
        results = [_Saved(t, op, "result", is_output=True, out_nr=i) for i, t in enumerate(outputs)]
    elif reads_results:
        results = [_Saved(t, op, "result", is_output=True, out_nr=i) if i in reads_results else None
                   for i, t in enumerate(outputs)]
    else:
        results = _NO_RESULTS if len(outputs) <= 1 else (None,) * len(outputs)
    # OpNode.__init__ inlined: one Python frame less on every recorded op
    node = _new_node(OpNode)
    node._name = _NODE_NAMES.get(op) or _node_name(op)
    node.next_edges = edges
    node.seq = _next_seq()
    if _anomaly["on"]:
        node.stack = traceback.format_stack()[:-1]  # drop this frame
    node.op = op
    node.formula = formula
    node.input_names = names
    node.needs = needs
    node.attrs = attrs
    node.out_meta = meta
    node.saved_inputs = saved_inputs
    node.saved_results = results
    if (inplace or op == "_copy_from") and outputs:
        base = outputs[0]._base
        if base is not None:
            _rebase(node, outputs[0], base, 0 if inplace else 1)
            return None
    return node


def _rebase(op_node, view, base, target_index):
    """After an in-place op on ``view``: ``base`` gets a CopySlices node, and ``view`` becomes a
    fresh strided view of the updated base, so both see the write in their graphs."""
    if base.requires_grad and base.grad_fn is None:
        raise RuntimeError(f"[{op_node.op}] a view of a leaf Variable that requires grad is being used in an "
                           "in-place operation.")
    if not base.is_contiguous():
        raise RuntimeError(f"[{op_node.op}] in-place operations on views of non-contiguous tensors are not "
                           "supported by autograd yet; clone() the base first")
    geometry = (tuple(view.shape), tuple(view.stride()), view.storage_offset() - base.storage_offset())
    meta = (tuple(base.shape), base.dtype, base.device)
    cs = CopySlices(edge_of(base), op_node, target_index, geometry, meta)
    base._set_requires_grad_raw(True)
    base.grad_fn = cs
    base._ag.pop("out_nr", None)
    fresh = base.as_strided(geometry[0], geometry[1], view.storage_offset())
    view._set_requires_grad_raw(True)
    view.grad_fn = fresh.grad_fn
    view._ag["out_nr"] = 0



# ---- the engine --------------------------------------------------------------------------------
def _zeros_for(meta):
    shape, dtype, device = meta
    return nd.zeros(*shape, dtype=dtype, device=device)


def _accumulate(buffers, node, nr, g):
    slot = buffers.get(node)
    if slot is None:
        buffers[node] = {nr: g}
        return
    prev = slot.get(nr)
    slot[nr] = g if prev is None else prev + g


def run_backward(roots, retain_graph, create_graph, capture=None):
    """roots: list of (tensor, grad). capture: {key: None} for autograd.grad, where key is the
    leaf tensor id or (node, out_nr); filled with the gradients found there."""
    root_edges = []
    for t, g in roots:
        e = edge_of(t)
        if e is None:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        root_edges.append((e, g))

    # dependency counts over the reachable graph (nodes hash by identity)
    deps: dict = {}
    nodes = set()
    stack = [e[0] for e, _ in root_edges]
    while stack:
        n = stack.pop()
        if n in nodes:
            continue
        nodes.add(n)
        for e in n.next_edges:
            if e is not None:
                m = e[0]
                deps[m] = deps.get(m, 0) + 1
                if m not in nodes:
                    stack.append(m)
    needed = None
    if capture is not None:
        needed = _prune(nodes, capture)

    buffers: dict = {}
    for (node, nr), g in root_edges:
        _accumulate(buffers, node, nr, g)
    # newest node first; seq numbers are unique, so the heap never compares nodes
    ready = []
    for node in {id(e[0]): e[0] for e, _ in root_edges}.values():
        if deps.get(node, 0) == 0:
            heapq.heappush(ready, (-node.seq, node))
    anomaly = _anomaly["on"] and _anomaly["check_nan"]
    prev_mode = _C.is_grad_enabled()
    _C._set_grad_enabled(create_graph)
    try:
        while ready:
            node = heapq.heappop(ready)[1]
            grads_in = buffers.pop(node, None) or {}
            if needed is not None and node not in needed:
                _skip_node(node, deps, ready)
                continue
            kind = type(node)
            if kind is AccumulateGrad:
                _run_accumulate(node, grads_in.get(0), create_graph, capture)
                continue
            n_out = len(node.out_meta)
            grads = [grads_in.get(0)] if n_out == 1 else [grads_in.get(i) for i in range(n_out)]
            pre_hooks = node.pre_hooks
            if pre_hooks:
                grads = _run_pre_hooks(pre_hooks, grads)
            if capture is not None:
                for i in range(n_out):
                    key = (node, i)
                    if key in capture and grads[i] is not None:
                        capture[key] = grads[i] if capture[key] is None else capture[key] + grads[i]
            n_none = 0  # counted by identity: list.count would call Tensor.__eq__
            for g in grads:
                if g is None:
                    n_none += 1
            if n_none == n_out:
                _skip_node(node, deps, ready)
                continue
            is_table_node = kind is OpNode or kind is CopySlices or isinstance(node, (OpNode, CopySlices))
            if n_none and is_table_node:
                # integer outputs (indices, masks) carry no gradient: formulas never read theirs
                grads = [g if g is not None or m is None or not m[1].is_floating_point else _zeros_for(m)
                         for g, m in zip(grads, node.out_meta)]
            input_grads = node.apply(grads)
            if node.post_hooks:
                input_grads = list(input_grads)
                for hook in list(node.post_hooks):
                    r = hook(tuple(input_grads), tuple(grads))
                    if r is not None:
                        input_grads = list(r)
            if anomaly:
                _check_anomaly(node, input_grads)
            if not retain_graph:
                node.release()
            for e, g in zip(node.next_edges, input_grads):
                if e is None:
                    continue
                nxt = e[0]
                if g is not None:
                    g = _fit(g, nxt, e[1])
                    slot = buffers.get(nxt)
                    if slot is None:
                        buffers[nxt] = {e[1]: g}
                    else:
                        prev = slot.get(e[1])
                        slot[e[1]] = g if prev is None else prev + g
                left = deps[nxt] - 1
                deps[nxt] = left
                if left == 0:
                    heapq.heappush(ready, (-nxt.seq, nxt))
            # no stale references to this node's gradients: _stealable counts references
            grads = input_grads = g = None
    finally:
        _C._set_grad_enabled(prev_mode)


def _run_pre_hooks(pre_hooks, grads):
    for i in range(len(grads)):
        for hook in pre_hooks.get(i, ()):
            if grads[i] is not None:
                r = hook(grads[i])
                if r is not None:
                    _check_hook_result(r, grads[i])
                    grads[i] = r
    for hook in pre_hooks.get(-1, ()):
        r = hook(tuple(grads))
        if r is not None:
            grads = list(r)
    return grads


def _fit(g, node, nr):
    """Reduce a broadcast gradient to the shape the receiving input had."""
    if type(node) is AccumulateGrad:
        target = node._variable()
        if target is None:
            return g
        shape, dtype = target.shape, target.dtype
    elif isinstance(node, (OpNode, CopySlices)):
        shape, dtype, _ = node.out_meta[nr]
    else:
        return g
    if g.shape != shape:
        g = _sum_to(g, tuple(shape))
    if g.dtype != dtype:
        g = g.to(dtype)
    return g


def _prune(nodes, capture):
    targets = set()
    for key in capture:
        if isinstance(key, tuple):
            targets.add(key[0])
    leaf_ids = {k for k in capture if isinstance(k, int)}
    needed = set()
    memo: dict = {}

    def visit(n):
        if id(n) in memo:
            return memo[id(n)]
        memo[id(n)] = False
        hit = n in targets or (isinstance(n, AccumulateGrad) and id(n.variable) in leaf_ids)
        for e in n.next_edges:
            if e is not None and visit(e[0]):
                hit = True
        memo[id(n)] = hit
        if hit:
            needed.add(n)
        return hit

    for n in list(nodes):
        visit(n)
    return needed


def _skip_node(node, deps, ready):
    """A node that receives no gradient still releases its edges to the rest of the graph."""
    for e in node.next_edges:
        if e is None:
            continue
        deps[e[0]] -= 1
        if deps[e[0]] == 0:
            heapq.heappush(ready, (-e[0].seq, e[0]))


def _check_hook_result(new, old):
    if tuple(new.shape) != tuple(old.shape):
        raise RuntimeError(f"hook returned a gradient of shape {tuple(new.shape)} but the gradient has shape {tuple(old.shape)}")
    if new.dtype != old.dtype:
        raise RuntimeError(f"hook returned a gradient of dtype {new.dtype} but the gradient has dtype {old.dtype}")


# Python references to a gradient the engine itself holds when it reaches _run_accumulate: the
# grads dict entry and _run_accumulate's argument. Anything beyond (user code, a hook that kept
# it, a second leaf, a capture) means the gradient is shared.
_ENGINE_REFS = 2


def _stealable(g) -> bool:
    """Whether a fresh leaf gradient can become ``.grad`` without a copy, as torch's
    AccumulateGrad steals an unshared gradient: nothing else (user code, another leaf that got
    the same tensor from a pass-through formula, a view) may see later in-place updates of it."""
    # + 2: _stealable's own argument and getrefcount's
    return not g.requires_grad and sys.getrefcount(g) <= _ENGINE_REFS + 2 and g._sole_owner()


def _run_accumulate(node, g, create_graph, capture):
    t = node._variable()
    if g is None or t is None:  # nothing to add, or the leaf no longer exists
        return
    ag = t._ag
    hooks = ag.get("hooks")
    if hooks:
        for hook in list(hooks):
            r = hook(g)
            if r is not None:
                _check_hook_result(r, g)
                g = r
    if capture is not None:
        key = id(t)
        if key in capture:
            capture[key] = g if capture[key] is None else capture[key] + g
        return
    old = t.grad
    if old is None:
        if create_graph:
            t.grad = g
        elif _stealable(g):
            t.grad = g._detach_alias()  # no base: the stolen gradient is a plain tensor, as in torch
        else:
            t.grad = g.detach().clone()
    elif create_graph:
        t.grad = old + g
    else:
        old.add_(g.detach())
    hooks = ag.get("post_accumulate_hooks")
    if hooks:
        for hook in list(hooks):
            hook(t)


def _check_anomaly(node, grads):
    for i, g in enumerate(grads):
        if g is not None and g.dtype.is_floating_point and g.numel() and not bool(g.isfinite().all()):
            where = "".join(node.stack or ["(enable detect_anomaly before the forward pass to see where)\n"])
            raise RuntimeError(
                f"Function '{node.name()}' returned nan/inf values in its {i}th output.\n"
                f"The forward op was called here:\n{where}")
