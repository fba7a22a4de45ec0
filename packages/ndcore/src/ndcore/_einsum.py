"""The body of the `einsum` composite (ops/ops.yaml): primitives only, so autograd and export see
diagonal, sum, permute, expand, reshape and matmul.

Repeated labels within one operand take a diagonal (``ii->i``), labels found in one operand only
and not in the output are summed first, then operands contract pairwise, left to right, each pair
as one batched matmul ``(batch, left, contracted) @ (batch, contracted, right)``. An ellipsis
becomes private labels, right-aligned across operands so that they broadcast."""
from __future__ import annotations

import math

from . import _C


def _fail(msg: str):
    raise ValueError(f"[einsum] {msg}")


def _parse(equation: str, operands):
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        _fail(f"{equation!r} has {len(terms)} operand subscripts but {len(operands)} operands were given")
    for term in terms + ([rhs] if arrow else []):
        bare = term.replace("...", "", 1)
        if any(not c.isalpha() for c in bare):
            _fail(f"invalid subscript {term!r} in {equation!r}: only letters and one '...' are allowed")
    n_ell = 0
    for i, (term, t) in enumerate(zip(terms, operands)):
        named = len(term.replace("...", ""))
        if ("..." in term and t.dim() < named) or ("..." not in term and t.dim() != named):
            _fail(f"operand {i} has shape {tuple(t.shape)} but subscript {term!r} names {named} dims")
        n_ell = max(n_ell, t.dim() - named if "..." in term else 0)
    ell = [chr(0x100 + k) for k in range(n_ell)]  # private labels, never letters

    def labels_of(term, ndim):
        head, dots, tail = term.partition("...")
        return list(head) + (ell[n_ell - (ndim - len(head) - len(tail)):] if dots else []) + list(tail)

    inputs = [labels_of(term, t.dim()) for term, t in zip(terms, operands)]
    if arrow:
        output = labels_of(rhs, len(rhs.replace("...", "")) + n_ell)
        seen = {c for ls in inputs for c in ls}
        for c in output:
            if c not in seen:
                _fail(f"output subscript {c!r} of {equation!r} does not appear in any input")
        if len(set(output)) != len(output):
            _fail(f"output subscripts of {equation!r} repeat a label")
    else:
        counts = {}
        for ls in inputs:
            for c in ls:
                counts[c] = counts.get(c, 0) + 1
        output = ell + sorted(c for c, n in counts.items() if n == 1 and c not in ell)
    return inputs, output


def einsum(equation: str, operands) -> _C.Tensor:
    operands = list(operands)
    inputs, output = _parse(equation, operands)
    sizes: dict[str, int] = {}
    for i, (labels, t) in enumerate(zip(inputs, operands)):
        for c, n in zip(labels, t.shape):
            prev = sizes.get(c, n)
            if prev != n and 1 not in (prev, n):
                _fail(f"subscript {c!r} has size {n} in operand {i} which does not broadcast with size {prev}")
            sizes[c] = max(prev, n)

    ops = []
    for i, (labels, t) in enumerate(zip(inputs, operands)):
        labels = list(labels)
        while len(set(labels)) != len(labels):  # repeated label: keep its diagonal
            c = next(c for c in labels if labels.count(c) > 1)
            a = labels.index(c)
            b = labels.index(c, a + 1)
            if t.shape[a] != t.shape[b]:
                _fail(f"subscript {c!r} is repeated in operand {i} with different sizes {t.shape[a]} and {t.shape[b]}")
            t = t.diagonal(0, a, b)
            labels = [x for k, x in enumerate(labels) if k not in (a, b)] + [c]
        ops.append((t, labels))

    def keep_after(k):
        return set(output).union(*[set(ls) for _, ls in ops[k + 1:]])

    def sum_out(t, labels, keep):
        drop = [k for k, c in enumerate(labels) if c not in keep]
        if drop:
            t = t.sum(drop)
            labels = [c for c in labels if c in keep]
        return t, labels

    cur, cur_l = sum_out(*ops[0], keep_after(0))
    for k in range(1, len(ops)):
        keep = keep_after(k)
        t2, l2 = sum_out(*ops[k], keep | set(cur_l))
        cur, cur_l = sum_out(cur, cur_l, keep | set(l2))
        batch = [c for c in cur_l if c in l2 and c in keep]
        contract = [c for c in cur_l if c in l2 and c not in keep]
        left = [c for c in cur_l if c not in l2]
        right = [c for c in l2 if c not in cur_l]
        size = {**dict(zip(cur_l, cur.shape)), **dict(zip(l2, t2.shape))}
        for c in batch + contract:
            size[c] = sizes[c]
        prod = lambda ls: math.prod(size[c] for c in ls)  # noqa: E731
        a = cur.permute([cur_l.index(c) for c in batch + left + contract]).expand([size[c] for c in batch + left + contract])
        b = t2.permute([l2.index(c) for c in batch + contract + right]).expand([size[c] for c in batch + contract + right])
        a = a.reshape(prod(batch), prod(left), prod(contract))
        b = b.reshape(prod(batch), prod(contract), prod(right))
        cur = a.matmul(b).reshape([size[c] for c in batch + left + right])
        cur_l = batch + left + right
    cur, cur_l = sum_out(cur, cur_l, set(output))
    if cur_l != output:
        cur = cur.permute([cur_l.index(c) for c in output])
    return cur
