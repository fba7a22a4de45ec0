"""The Optimizer base class: parameter groups, per-parameter state, state_dict and hooks.

Mirrors ``torch.optim.Optimizer`` (2.13): the same group/state layout, the same ``state_dict``
format (state keyed by integer parameter index, groups holding index lists), the same hooks.
Subclasses gather the tensors of each group and hand them to one multi-tensor C++ kernel
(``ndcore._C._fused_*_``) per group, so a step costs one dispatch per group, not per element.
"""
from __future__ import annotations

import functools
import itertools
import warnings
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from copy import deepcopy
from typing import Any

import ndcore
import ndgrad

__all__ = ["Optimizer", "required", "register_optimizer_step_pre_hook", "register_optimizer_step_post_hook"]


class _RequiredParameter:
    """Singleton marking a hyper-parameter that each group must give (e.g. a ``lr`` with no default)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


class RemovableHandle:
    """Handle returned by the ``register_*_hook`` methods; ``remove()`` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks_dict: OrderedDict) -> None:
        self._hooks = hooks_dict
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


_global_optimizer_pre_hooks: OrderedDict[int, Callable] = OrderedDict()
_global_optimizer_post_hooks: OrderedDict[int, Callable] = OrderedDict()


def register_optimizer_step_pre_hook(hook: Callable) -> RemovableHandle:
    """Registers ``hook(optimizer, args, kwargs) -> None | (args, kwargs)`` before every optimizer's step."""
    handle = RemovableHandle(_global_optimizer_pre_hooks)
    _global_optimizer_pre_hooks[handle.id] = hook
    return handle


def register_optimizer_step_post_hook(hook: Callable) -> RemovableHandle:
    """Registers ``hook(optimizer, args, kwargs)`` after every optimizer's step."""
    handle = RemovableHandle(_global_optimizer_post_hooks)
    _global_optimizer_post_hooks[handle.id] = hook
    return handle


def _to_float(x) -> float:
    """A hyper-parameter as a Python float (torch accepts 1-element tensors for lr and betas)."""
    return float(x.item()) if isinstance(x, ndcore.Tensor) else float(x)


def _scalar_dtype():
    # torch keeps `step` in float32 unless the default dtype is float64 (_get_scalar_dtype)
    return ndcore.float64 if ndcore.get_default_dtype() == ndcore.float64 else ndcore.float32


def _new_step() -> ndcore.Tensor:
    return ndcore.tensor(0.0, dtype=_scalar_dtype())


def _zeros_like(p: ndcore.Tensor) -> ndcore.Tensor:
    return ndcore.zeros_like(p)


def _empty_like(p: ndcore.Tensor) -> ndcore.Tensor:
    # shape passed as a tuple: ndcore.empty_like spreads it as varargs, which fails for 0-d tensors
    return ndcore.empty(tuple(p.shape), dtype=p.dtype, device=p.device)


def _full_like(p: ndcore.Tensor, value: float) -> ndcore.Tensor:
    return ndcore.full(tuple(p.shape), value, dtype=p.dtype, device=p.device)


def _check_flags(name: str, differentiable: bool = False, fused=None, foreach=None) -> None:
    """torch's flag rules; ``differentiable=True`` is refused since the fused updates are not recorded."""
    if differentiable:
        raise NotImplementedError(f"[{name}] differentiable=True is not supported: nd's optimizer updates are "
                                  "multi-tensor kernels that autograd does not record")
    if fused and foreach:
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")


def _restore_group_defaults(optimizer: Optimizer, defaults, tensor_steps: bool = True) -> None:
    """After unpickling: fills option keys that older state lacks with torch's defaults, and (if
    ``tensor_steps``) makes the per-parameter ``step`` a tensor, as torch keeps it."""
    for group in optimizer.param_groups:
        for key, value in defaults:
            group.setdefault(key, value)
    if tensor_steps:
        _tensor_steps(optimizer)


def _collect_state(optimizer: Optimizer, group: dict, state_keys: tuple[str, ...]):
    """The parameters of ``group`` that have a gradient, their grads, one list per state buffer
    named in ``state_keys`` (zero-initialised with a tensor ``step`` on first use) and the steps:
    the argument lists of a fused multi-tensor update kernel."""
    params, grads, steps = [], [], []
    buffers = tuple([] for _ in state_keys)
    for p in group["params"]:
        if p.grad is None:
            continue
        state = optimizer.state[p]
        if not state:
            state["step"] = _new_step()
            for key in state_keys:
                state[key] = _zeros_like(p)
        params.append(p)
        grads.append(p.grad)
        for buffer, key in zip(buffers, state_keys):
            buffer.append(state[key])
        steps.append(state["step"])
    return params, grads, buffers, steps


def _use_no_grad(step: Callable) -> Callable:
    """Runs ``step`` with autograd off (on when the group asked for ``differentiable``)."""

    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        with ndgrad.set_grad_enabled(bool(self.defaults.get("differentiable", False))):
            return step(self, *args, **kwargs)

    return wrapper


def _tensor_steps(optimizer: Optimizer) -> None:
    """After loading older state where ``step`` was a number, make it the 0-d tensor the kernels update."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            st = optimizer.state.get(p)
            if st and "step" in st and not isinstance(st["step"], ndcore.Tensor):
                st["step"] = ndcore.tensor(float(st["step"]), dtype=_scalar_dtype())


class Optimizer:
    """Base class of all optimizers.

    Args:
        params: An iterable of tensors, of ``(name, tensor)`` pairs (``named_parameters()``), or of
            dicts, each a parameter group (``{"params": [...], "lr": 0.1, ...}``) whose missing
            options are filled from ``defaults``.
        defaults: Default values of the optimizer's options.
    """

    def __init__(self, params, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self._optimizer_step_pre_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_step_post_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_state_dict_pre_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_state_dict_post_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_load_state_dict_post_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._patch_step_function()
        if isinstance(params, ndcore.Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            f"but got {type(params).__module__}.{type(params).__name__}")
        self.state: defaultdict[ndcore.Tensor, Any] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    def __getstate__(self) -> dict[str, Any]:
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for name in ("_optimizer_step_pre_hooks", "_optimizer_step_post_hooks", "_optimizer_state_dict_pre_hooks",
                     "_optimizer_state_dict_post_hooks", "_optimizer_load_state_dict_pre_hooks",
                     "_optimizer_load_state_dict_post_hooks"):
            self.__dict__.setdefault(name, OrderedDict())
        self._patch_step_function()
        self.defaults.setdefault("differentiable", False)

    def __repr__(self) -> str:
        out = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            out += f"\nParameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    out += f"    {key}: {group[key]}\n"
        return out + ")"

    # ---- step and its hooks --------------------------------------------------------------------
    @staticmethod
    def profile_hook_step(func: Callable) -> Callable:
        """Wraps a subclass's ``step`` so the global and per-instance step hooks run around it."""

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            self = args[0]
            for pre_hook in itertools.chain(_global_optimizer_pre_hooks.values(),
                                            self._optimizer_step_pre_hooks.values()):
                result = pre_hook(self, args, kwargs)
                if result is not None:
                    if isinstance(result, tuple) and len(result) == 2:
                        args, kwargs = result
                    else:
                        raise RuntimeError(f"{func} must return None or a tuple of (new_args, new_kwargs), "
                                           f"but got {result}.")
            out = func(*args, **kwargs)
            for post_hook in itertools.chain(self._optimizer_step_post_hooks.values(),
                                             _global_optimizer_post_hooks.values()):
                post_hook(self, args, kwargs)
            return out

        return wrapper

    def _patch_step_function(self) -> None:
        self._zero_grad_profile_name = f"Optimizer.zero_grad#{self.__class__.__name__}.zero_grad"
        if not getattr(self.__class__.step, "hooked", None):
            self.__class__.step = self.profile_hook_step(self.__class__.step)
            self.__class__.step.hooked = True

    def register_step_pre_hook(self, hook: Callable) -> RemovableHandle:
        """Registers ``hook(optimizer, args, kwargs) -> None | (args, kwargs)`` run before ``step``."""
        handle = RemovableHandle(self._optimizer_step_pre_hooks)
        self._optimizer_step_pre_hooks[handle.id] = hook
        return handle

    def register_step_post_hook(self, hook: Callable) -> RemovableHandle:
        """Registers ``hook(optimizer, args, kwargs)`` run after ``step``."""
        handle = RemovableHandle(self._optimizer_step_post_hooks)
        self._optimizer_step_post_hooks[handle.id] = hook
        return handle

    def step(self, closure: Callable[[], Any] | None = None):
        """Performs one optimization step.

        Args:
            closure: Re-evaluates the model and returns the loss (run with autograd on).
        """
        raise NotImplementedError

    @staticmethod
    def _run_closure(closure):
        if closure is None:
            return None
        with ndgrad.enable_grad():
            return closure()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Resets the gradients of all optimized tensors.

        Args:
            set_to_none: Set ``.grad`` to None (default) instead of filling it with zeros.
        """
        zeros = []
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if g.grad_fn is not None:
                        g.detach_()
                    else:
                        g.requires_grad_(False)
                    zeros.append(g)
        if zeros:
            with ndgrad.no_grad():
                ndcore._C._foreach_zero_(zeros)

    # ---- parameter groups ------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Adds a parameter group (e.g. layers unfrozen while fine-tuning).

        Args:
            param_group: ``{"params": tensors or (name, tensor) pairs, <option>: value, ...}``;
                missing options take the optimizer's defaults.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, ndcore.Tensor):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering of "
                            "tensors in sets will change between runs. Please use a list instead.")
        else:
            param_group["params"] = list(params)
        tensors, names = [], []
        for param in param_group["params"]:
            if isinstance(param, tuple):
                names.append(param[0])
                tensors.append(param[1])
            else:
                tensors.append(param)
        param_group["params"] = tensors
        if names:
            if len(names) != len(tensors):
                raise ValueError("all optimizer params should be with/without names. Some param names are missing")
            param_group["param_names"] = names
        for param in tensors:
            if not isinstance(param, ndcore.Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is "
                                f"{type(param).__module__}.{type(param).__name__}")
            if not self.defaults.get("differentiable", None) and not (param.is_leaf or param.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            param_group.setdefault(name, default)
        if len(tensors) != len({id(p) for p in tensors}):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in future, this will cause "
                          "an error; see github.com/pytorch/pytorch/issues/40967 for more information", stacklevel=3)
        seen: set[int] = set()
        for group in self.param_groups:
            seen.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                which = "with names" if "param_names" in param_group else "without names"
                raise ValueError("all optimizer param groups should be with/without names. "
                                 f"cannot add param group {which} to the optimizer")
        if any(id(p) in seen for p in tensors):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    # ---- state_dict ------------------------------------------------------------------------------
    def register_state_dict_pre_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """Registers ``hook(optimizer)`` run before ``state_dict``."""
        return _register(self._optimizer_state_dict_pre_hooks, hook, prepend)

    def register_state_dict_post_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """Registers ``hook(optimizer, state_dict) -> state_dict | None`` run after ``state_dict``."""
        return _register(self._optimizer_state_dict_post_hooks, hook, prepend)

    def register_load_state_dict_pre_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """Registers ``hook(optimizer, state_dict) -> state_dict | None`` run before ``load_state_dict``."""
        return _register(self._optimizer_load_state_dict_pre_hooks, hook, prepend)

    def register_load_state_dict_post_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """Registers ``hook(optimizer)`` run after ``load_state_dict``."""
        return _register(self._optimizer_load_state_dict_post_hooks, hook, prepend)

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state as ``{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}``.

        Parameters are replaced by their position over all groups, so the dict holds only plain
        values and state tensors (it round-trips through ``nd.save``/``nd.load``). The state
        tensors are the live ones, as in torch: copy the dict to snapshot it.
        """
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)
        mapping: dict[int, int] = {}
        start = 0

        def pack_group(group):
            nonlocal start
            packed = {k: v for k, v in group.items() if k != "params"}
            mapping.update({id(p): i for i, p in enumerate(group["params"], start) if id(p) not in mapping})
            packed["params"] = [mapping[id(p)] for p in group["params"]]
            start += len(packed["params"])
            return packed

        param_groups = [pack_group(g) for g in self.param_groups]
        packed_state = {(mapping[id(k)] if isinstance(k, ndcore.Tensor) else k): v for k, v in self.state.items()}
        state_dict = {"state": packed_state, "param_groups": param_groups}
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            result = post_hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    @staticmethod
    def _process_value_according_to_param_policy(param, value, param_id, param_groups, key=None):
        # Floating state follows the parameter's dtype and device, except `step`, which keeps
        # its own dtype (torch issue 74424) unless the group is fused or capturable.
        fused = capturable = False
        for pg in param_groups:
            if param_id in pg["params"]:
                fused, capturable = pg.get("fused", False), pg.get("capturable", False)
                break
        if key == "step":
            return value.to(dtype=ndcore.float32, device=param.device) if (capturable or fused) else value
        if param.dtype.is_floating_point:
            return value.to(dtype=param.dtype, device=param.device)
        return value.to(device=param.device)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads state produced by :meth:`state_dict` (of this optimizer class, same group sizes).

        Args:
            state_dict: The dict to load; its tensors are copied to the parameters' dtype/device.
        """
        state_dict = state_dict.copy()
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                             "optimizer's group")
        id_map = dict(zip(itertools.chain.from_iterable(g["params"] for g in saved_groups),
                          itertools.chain.from_iterable(g["params"] for g in groups)))

        def cast(param, value, param_id=None, key=None):
            if isinstance(value, ndcore.Tensor):
                return Optimizer._process_value_according_to_param_policy(param, value, param_id,
                                                                          state_dict["param_groups"], key)
            if isinstance(value, dict):
                return {k: cast(param, v, param_id, key=k) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return type(value)(cast(param, v, param_id) for v in value)
            return value

        state: defaultdict[ndcore.Tensor, dict] = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = cast(param, v, param_id=k)
            else:
                state[k] = v

        def update_group(group, new_group):
            new_group["params"] = group["params"]
            if "param_names" in group and "param_names" not in new_group:
                new_group["param_names"] = group["param_names"]
            return new_group

        param_groups = [update_group(g, ng) for g, ng in zip(groups, saved_groups)]
        self.__setstate__({"state": state, "param_groups": param_groups})
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)


def _register(hooks: OrderedDict, hook: Callable, prepend: bool) -> RemovableHandle:
    handle = RemovableHandle(hooks)
    hooks[handle.id] = hook
    if prepend:
        hooks.move_to_end(handle.id, last=False)
    return handle


def _validate(name: str, **checks) -> None:
    """Raises torch's messages for out-of-range hyper-parameters (``Invalid learning rate: -1``)."""
    labels = {"lr": "learning rate", "eps": "epsilon value", "weight_decay": "weight_decay value",
              "momentum": "momentum value", "alpha": "alpha value", "rho": "rho value",
              "lr_decay": "lr_decay value", "momentum_decay": "momentum_decay value",
              "initial_accumulator_value": "initial_accumulator_value"}
    lr = checks.get("lr")
    if isinstance(lr, ndcore.Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    for key, value in checks.items():
        if key == "betas":
            for i, b in enumerate(value):
                if not 0.0 <= _to_float(b) < 1.0:
                    raise ValueError(f"Invalid beta parameter at index {i}: {b}")
        elif not 0.0 <= _to_float(value):
            raise ValueError(f"Invalid {labels[key]}: {value}")
