"""Bad input raises a Python exception that names the op in brackets and the shapes or dtypes
involved (STYLE.md: errors name the op first), and never crashes the interpreter."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ndcore as nd


def _x(*shape, dtype=None):
    return nd.ones(*shape, dtype=dtype)


# (id, call, exception types, regexes the message must all match)
CASES = [
    ("matmul_shapes", lambda: nd.matmul(_x(2, 3), _x(4, 5)), ValueError, [r"^\[matmul\]", r"\(2, 3\)", r"\(4, 5\)"]),
    ("matmul_operator", lambda: _x(2, 3) @ _x(2, 3), ValueError, [r"^\[matmul\]", r"\(2, 3\)"]),
    ("matmul_vectors", lambda: nd.matmul(_x(3), _x(4)), ValueError, [r"^\[matmul\]", r"\(3,\)", r"\(4,\)"]),
    ("matmul_0d", lambda: nd.matmul(nd.tensor(1.0), _x(2)), ValueError, [r"^\[matmul\]", r"\(\)"]),
    ("mm_rank", lambda: nd.mm(_x(2, 3), _x(3)), ValueError, [r"^\[mm\]", r"\(2, 3\)", r"\(3,\)"]),
    ("mm_dtypes", lambda: nd.mm(_x(2, 3), _x(3, 2, dtype=nd.float64)), TypeError, [r"^\[mm\]", "float32", "float64"]),
    ("bmm_shapes", lambda: nd.bmm(_x(2, 2, 3), _x(3, 3, 2)), ValueError, [r"^\[bmm\]", r"\(2, 2, 3\)", r"\(3, 3, 2\)"]),
    ("addmm_shapes", lambda: nd.addmm(_x(2, 2), _x(2, 3), _x(2, 2)), ValueError, [r"^\[addmm\]", r"\(2, 3\)"]),
    ("broadcast_add", lambda: nd.add(_x(2, 3), _x(4, 3)), ValueError, [r"^\[add\]", r"\(2, 3\)", r"\(4, 3\)"]),
    ("broadcast_mul_operator", lambda: _x(2, 3) * _x(2), ValueError, [r"^\[mul\]", r"\(2, 3\)", r"\(2,\)"]),
    ("broadcast_inplace", lambda: _x(3, 1).add_(_x(3, 4)), ValueError, [r"^\[add_?\]", r"\(3, 1\)", r"\(3, 4\)"]),
    ("broadcast_where", lambda: nd.where(nd.tensor([True, False]), _x(3), _x(2)), ValueError, [r"^\[where\]", r"\(3,\)"]),
    ("cat_sizes", lambda: nd.cat([_x(2, 3), _x(2, 4)]), ValueError, [r"^\[cat\]", "3", "4"]),
    ("cat_ranks", lambda: nd.cat([_x(2, 3), _x(3)]), ValueError, [r"^\[cat\]", "dimensions"]),
    ("cat_empty_list", lambda: nd.cat([]), ValueError, [r"^\[cat\]"]),
    ("stack_sizes", lambda: nd.stack([_x(2), _x(3)]), ValueError, [r"^\[stack\]", r"\(2,\)", r"\(3,\)"]),
    ("bitwise_and_float", lambda: nd.bitwise_and(_x(2), _x(2)), TypeError, [r"^\[bitwise_and\]", "float32"]),
    ("bitwise_or_operator", lambda: _x(2) | 1, TypeError, [r"^\[bitwise_or\]", "float32"]),
    ("bitwise_not_float", lambda: ~_x(2), TypeError, [r"^\[bitwise_not\]", "float32"]),
    ("shift_float", lambda: _x(2, dtype=nd.float64) << 1, TypeError, [r"^\[bitwise_left_shift\]", "float64"]),
    ("masked_fill_float_mask", lambda: _x(2, 3).masked_fill(_x(2, 3), 0.0), TypeError, [r"^\[masked_fill\]", "float32"]),
    ("where_float_condition", lambda: nd.where(_x(2), _x(2), _x(2)), TypeError, [r"^\[where\]", "float32"]),
    ("index_float_indices", lambda: _x(3).index_select(0, nd.tensor([0.5])), (IndexError, TypeError),
     [r"^\[index(_select)?\]", "float32"]),
    ("int_add_float_alpha", lambda: nd.add(_x(2, dtype=nd.int32), _x(2, dtype=nd.int32), alpha=0.5), TypeError,
     [r"^\[add\]", "alpha"]),
    ("sum_dim", lambda: _x(2, 3).sum(3), IndexError, [r"^\[sum\]", r"\[-2, 1\]", "3"]),
    ("transpose_dim", lambda: _x(2, 3).transpose(0, 2), IndexError, [r"^\[transpose\]", "2"]),
    ("unsqueeze_dim", lambda: _x(2, 3).unsqueeze(4), IndexError, [r"^\[unsqueeze\]", r"\[-3, 2\]"]),
    ("select_dim", lambda: _x(2, 3).select(2, 0), IndexError, [r"^\[select\]"]),
    ("softmax_dim", lambda: nd.softmax(_x(2, 3), 2), IndexError, [r"^\[\w+\]", "range"]),
    ("flatten_dim", lambda: _x(2, 3).flatten(5), IndexError, [r"^\[flatten\]", "5"]),
    ("flatten_dims_1d", lambda: _x(2).flatten(1, 0), IndexError, [r"^\[flatten\]"]),
    ("permute_repeat", lambda: _x(2, 3).permute(0, 0), ValueError, [r"^\[permute\]"]),
    ("permute_count", lambda: _x(2, 3).permute(0), ValueError, [r"^\[permute\]", r"\(2, 3\)"]),
    ("diagonal_same_dims", lambda: _x(2, 3).diagonal(0, 0, 0), ValueError, [r"^\[diagonal\]"]),
    ("zeros_negative", lambda: nd.zeros(2, -3), ValueError, [r"^\[\w+\]", "negative", r"\(2, -3\)"]),
    ("empty_negative", lambda: nd.empty(-1), ValueError, [r"^\[empty\]", "negative"]),
    ("full_negative", lambda: nd.full((-1,), 1.0), ValueError, [r"^\[\w+\]", "negative"]),
    ("randperm_negative", lambda: nd.randperm(-1), ValueError, [r"^\[randperm\]"]),
    ("reshape_size", lambda: _x(2, 3).reshape(4, 2), ValueError, [r"^\[reshape\]", r"\(4, 2\)", "6"]),
    ("reshape_two_infer", lambda: _x(2, 3).reshape(-1, -1), ValueError, [r"^\[reshape\]", "one dimension"]),
    ("view_size", lambda: _x(2, 3).view(5), ValueError, [r"^\[view\]", r"\(5,\)", "6"]),
    ("view_strides", lambda: _x(3, 3).t().view(9), ValueError, [r"^\[view\]", "reshape"]),
    ("expand_size", lambda: _x(2, 3).expand(3, 3), ValueError, [r"^\[expand\]", r"\(3, 3\)", r"\(2, 3\)"]),
    ("as_strided_oob", lambda: _x(3).as_strided((4,), (1,)), ValueError, [r"^\[as_strided\]", r"\(4,\)"]),
    ("unfold_size", lambda: _x(3).unfold(0, 5, 1), ValueError, [r"^\[unfold\]", "5"]),
    ("narrow_range", lambda: _x(3).narrow(0, 2, 5), IndexError, [r"^\[narrow\]", "3"]),
    ("index_int", lambda: _x(2, 3)[5], IndexError, ["5", "size 2"]),
    ("index_list", lambda: _x(2, 3)[[0, 2]], IndexError, [r"^\[index\]", "2"]),
    ("index_too_many", lambda: _x(2, 3)[:, :, 0], IndexError, ["too many indices"]),
    ("gather_oob", lambda: _x(3).gather(0, nd.tensor([-5])), IndexError, [r"^\[gather\]", "-5"]),
    ("scatter_oob", lambda: _x(3).scatter(0, nd.tensor([9]), _x(1)), IndexError, [r"^\[scatter\]", "9"]),
    ("index_put_oob", lambda: _x(3).index_put_((nd.tensor([7]),), nd.tensor([1.0])), IndexError, [r"^\[index_put_\]", "7"]),
    ("div_rounding_mode", lambda: _x(2).div(_x(2), rounding_mode="bad"), ValueError, [r"^\[div\]", "bad"]),
    ("add_str", lambda: nd.add(_x(2), "a"), TypeError, [r"^\[add\]", "str"]),
    ("add_list", lambda: nd.add(_x(2), [1, 2]), TypeError, [r"^\[add\]"]),
    ("add_operator_str", lambda: _x(2) + "a", TypeError, ["str"]),
    ("add_operator_none", lambda: _x(2) - None, TypeError, ["NoneType"]),
    ("exp_str", lambda: nd.exp("x"), TypeError, [r"^\[exp\]", "str"]),
    ("sum_dim_str", lambda: nd.sum(_x(2), dim="a"), TypeError, [r"^\[sum\]", "str"]),
    ("sum_dim_float", lambda: _x(2).sum(dim=1.5), TypeError, [r"^\[sum\]", "float"]),
    ("clamp_str", lambda: nd.clamp(_x(2), "a"), TypeError, [r"^\[clamp\]"]),
    ("to_bad_arg", lambda: _x(2).to(3.5), TypeError, [r"^\[to\]"]),
    ("tensor_ragged", lambda: nd.tensor([[1, 2], [3]]), (TypeError, ValueError), []),
    ("tensor_str", lambda: nd.tensor("a"), TypeError, [r"^\[tensor\]"]),
    ("item_many", lambda: _x(2).item(), (ValueError, RuntimeError), [r"^\[item\]", "2"]),
    ("bool_many", lambda: bool(_x(2)), (ValueError, RuntimeError), ["ambiguous"]),
]


@pytest.mark.parametrize(("call", "exc", "patterns"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_named_error(call, exc, patterns):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"


def test_failed_inplace_leaves_tensor_untouched():
    x = nd.arange(6.0).reshape(3, 2)
    before = x._version
    with pytest.raises(ValueError, match=r"\[add_?\]"):
        x.add_(nd.ones(3, 3))
    with pytest.raises(TypeError, match=r"\[\w+\]"):
        nd.arange(3).exp_()
    assert x.tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]] and x._version == before


# Each snippet runs in a fresh interpreter so a hard crash (SIGFPE, SIGSEGV) fails one test
# instead of the whole session. Expected: the torch result, RAISES (a Python exception), or
# None (either, as long as the interpreter survives).
RAISES = "raises"
CRASH_SNIPPETS = {
    "int64_min_floor_div_neg1": ("nd.tensor([-2**63]) // -1", [-2**63]),
    "int32_min_floor_div_neg1": ("nd.tensor([-2**31], dtype=nd.int32) // -1", [-2**31]),
    "int8_min_floor_div_neg1": ("nd.tensor([-128], dtype=nd.int8) // -1", [-128]),
    "int64_min_remainder_neg1": ("nd.tensor([-2**63]) % -1", [0]),
    "int32_min_fmod_neg1": ("nd.fmod(nd.tensor([-2**31], dtype=nd.int32), nd.tensor(-1, dtype=nd.int32))", [0]),
    "int64_min_trunc_div_neg1": ("nd.div(nd.tensor([-2**63]), -1, rounding_mode='trunc')", [-2**63]),
    "int_floor_div_zero": ("nd.tensor([5, -5]) // 0", None),
    "huge_index": ("nd.ones(3)[nd.tensor([2**40])]", RAISES),
    "empty_nbytes_overflow": ("nd.empty(2**62)[10**12].fill_(1.0)", RAISES),
    "empty_numel_overflow": ("nd.empty(2**32, 2**32)", RAISES),
    "as_strided_extent_overflow": ("nd.ones(3).as_strided((2**40,), (2**40,))[1000]", RAISES),
    "many_nones": ("nd.ones(3)[(None,) * 70]", None),
}


@pytest.mark.parametrize("name", list(CRASH_SNIPPETS))
def test_never_crashes(name):
    expr, expected = CRASH_SNIPPETS[name]
    script = textwrap.dedent(f"""
        import ndcore as nd
        try:
            out = {expr}
        except Exception as e:
            print("{RAISES}", type(e).__name__)
        else:
            small = out.dim() < 8 and all(n < 100 for n in out.shape)
            print("value", out.tolist() if small else tuple(out.shape))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"interpreter died with {proc.returncode}: {proc.stderr[-500:]}"
    if expected == RAISES:
        assert proc.stdout.startswith(RAISES), proc.stdout
    elif expected is not None:
        assert proc.stdout.strip() == f"value {expected}"


def test_numpy_scalars_and_arrays_as_operands():
    x = nd.tensor([1.0, 2.0])
    assert (x + np.float32(1.0)).tolist() == [2.0, 3.0]
    assert (x * np.int64(2)).dtype == nd.float32
    with pytest.raises(TypeError):
        nd.add(x, np.array([1.0, 2.0]))  # torch: argument 'other' must be Tensor, not ndarray
