"""A captured gradient step: forward, loss, backward, gradient clipping and Adam's update as one compiled program.

Eagerly, one gradient step of a small network is hundreds of tiny ops (the forward, autograd's backward, the norm of
the clip, Adam), each paying the framework's fixed cost: a kernel launch on a GPU. :func:`capture` compiles a whole
step, written with :class:`GradientStep`, into one ``torch.compile`` program (on CUDA ``mode="reduce-overhead"``,
so the program is replayed as one CUDA graph), with :func:`~thorndike.core.compile.maybe_compile`'s eager fallback.

What torch 2.13 needs for that (found by trying; ``torch._dynamo.explain`` counts the graphs):

- ``loss.backward()`` inside a compiled function is a graph break (dynamo does not trace the autograd engine), and
  ``Optimizer.step`` graph-breaks on purpose (``_use_grad``: torch compiles the optimiser as its own graph), so
  ``backward(); clip_grad_norm_(); optimizer.step()`` compiles to three programs at best. Here the gradient is
  ``torch.func.grad_and_value`` of the loss through ``torch.func.functional_call`` (which dynamo traces), and
  Adam's update is written out below: forward, backward, clip and update are one graph, no break.
- The program runs under ``torch.no_grad()``: otherwise AOTAutograd traces it for training (the parameters require
  gradients) and refuses the in-place update of a tensor the backward saved. ``grad_and_value`` ignores the outer
  ``no_grad``, as functorch's transforms do.
- The fused Adam kernel cannot be traced with a tensor learning rate (``aten::_fused_adam_.tensor_lr`` has no fake
  implementation), and ``torch.optim.Adam(capturable=True)`` refuses CPU tensors; a Python float learning rate
  would be a guard, so every new rate (PPO's annealing) would recompile. So the update is Adam's arithmetic in
  plain tensor ops (inductor fuses them), with the learning rate a 0-d float64 tensor that :class:`GradientStep`
  refills from the optimiser's ``param_groups`` before each call: a changed rate takes effect without a recompile.
  The optimiser's state (``step``, ``exp_avg``, ``exp_avg_sq``, the step a tensor on the parameters' device, as
  the fused kernel keeps it) is the same dictionary :class:`~thorndike.core.networks.LeanAdam` reads, so
  checkpoints and the eager path are unchanged. Equal to the fused kernel to float rounding (a test compares them).
- Nothing waits for the host: no ``.item()``, the clip is ``clip_grad_norm_``'s arithmetic on device, and random
  numbers are drawn by the caller before the program (a ``torch.Generator`` inside would break the graph).
- On CUDA, cudagraph trees copy any input whose address is not static before each replay, and skip the graph for
  inputs it mutates unless they are static: parameters, optimiser state and the learning rate are marked static
  (``torch._dynamo.mark_static_address``). The outputs live in the graph's memory and the next replay overwrites
  them, so :func:`capture` hands back clones.
- A custom ``torch.autograd.Function`` in the loss needs ``forward`` and ``setup_context`` apart (``torch.func``'s
  form), and compiled under ``grad_and_value`` torch 2.13 got the critics' output layer's weight gradient wrong
  (``_EnsembleDot``): under compile that layer is the plain product (``torch.compiler.is_compiling()``).

When it is used (:func:`capture_by_default`): with the run option ``compile``, on CUDA and on the CPU. On CUDA it
removes the launches. On the 2-core CPU this project is developed on it is faster too, measured A/B in one process
(``benchmarks/capture_ab.py``, ``docs/fast_path.md``): a PPO iteration of ``ppo_cartpole_fast`` 0.51 of eager
(0.66 compiled without capturing the step), a DQN gradient step 0.64, a SAC step 0.40; each program compiles
once (20-40 s the first time on that CPU, seconds from inductor's cache after). An algorithm's ``capture``
attribute, set before its first update, overrides the rule (the tests compare both paths with it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value

from thorndike.core.compile import maybe_compile

__all__ = ["GradientStep", "capture", "capture_by_default", "init_adam_state"]

F = TypeVar("F", bound=Callable[..., Any])


def capture_by_default(compile: bool, device: torch.device | str) -> bool:
    """Whether an algorithm's update runs as a captured step: with the run option ``compile`` on CUDA (it removes
    the launches) and on the CPU (measured faster there too; see the module docstring); not on other devices, where
    it has not been measured."""
    return compile and torch.device(device).type in ("cpu", "cuda")


def init_adam_state(optimizer: torch.optim.Adam) -> None:
    """Create Adam's state for every parameter that has none, as ``torch.optim.Adam(fused=True)``'s first step does
    (zeros, and the step a float32 0-d tensor on the parameter's device), so that a program can update it in place
    from the first step on."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p not in optimizer.state or len(optimizer.state[p]) == 0:
                optimizer.state[p] = {
                    "step": torch.zeros((), dtype=torch.float32, device=p.device),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                }


class _Holder(nn.Module):
    """The modules whose parameters one step differentiates, under one root, so ``functional_call`` can swap them."""

    def __init__(self, modules: Mapping[str, nn.Module]) -> None:
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)

    def forward(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


class GradientStep:
    """One gradient step of one or more Adam optimisers, written to be traced into a captured program.

    ``modules`` name the modules whose parameters the step differentiates; ``optimizers`` are their Adam
    optimisers (together they must hold exactly those parameters, each in one optimiser). Calling the step with a
    loss function ``loss_fn(*args) -> (loss, aux)`` (which reads the modules as usual) computes the loss's
    gradient with ``torch.func.grad_and_value``, clips its global norm to ``max_grad_norm`` (over all the
    parameters, as ``clip_grad_norm_`` does), and applies each optimiser's Adam update in place with its current
    learning rate. Returns ``(loss, aux)``, detached. Several optimisers in one step is a joint step: the gradient
    of one summed loss (exact when no part of it reaches another optimiser's parameters; see
    :func:`~thorndike.core.off_policy.joint_step`).

    Adam without weight decay, amsgrad or maximize (the options this library uses). Eagerly this is correct too,
    only slower (the fallback when compiling fails).
    """

    def __init__(self, modules: Mapping[str, nn.Module], optimizers: torch.optim.Adam | list[torch.optim.Adam],
                 max_grad_norm: float | None = None) -> None:
        self.holder = _Holder(modules)
        named = list(self.holder.named_parameters())
        self.names = [name for name, _ in named]
        self.params = [p for _, p in named]
        self.optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        self.max_grad_norm = max_grad_norm
        index = {p: i for i, p in enumerate(self.params)}
        owned = [p for optimizer in self.optimizers for group in optimizer.param_groups for p in group["params"]]
        if len(owned) != len(self.params) or set(owned) != set(self.params):
            raise ValueError("the optimisers must hold exactly the parameters of the step's modules, once each")
        # Per parameter group: its optimiser, its index, the positions of its parameters in self.params, and its
        # learning rate as a tensor. The groups and the state are looked up on the optimiser at each call:
        # load_state_dict replaces both.
        self.groups: list[tuple[torch.optim.Adam, int, list[int], Tensor]] = []
        for optimizer in self.optimizers:
            for number, group in enumerate(optimizer.param_groups):
                if group["weight_decay"] or group["amsgrad"] or group["maximize"] or \
                        group.get("decoupled_weight_decay"):
                    raise ValueError("GradientStep does Adam without weight decay, amsgrad or maximize")
                lr = torch.tensor(float(group["lr"]), dtype=torch.float64, device=self.params[0].device)
                self.groups.append((optimizer, number, [index[p] for p in group["params"]], lr))
        self.lrs = [float(optimizer.param_groups[number]["lr"]) for optimizer, number, _, _ in self.groups]
        self.states: list[Any] = []
        self.prepare()

    def prepare(self) -> bool:
        """Before each call, outside the program: create Adam's state where an optimiser has none, and copy the
        optimisers' current learning rates into the program's tensors (only when one changed: a changed rate needs
        no recompile). True when an optimiser's state is not the one of the last call (the first call, or a
        checkpoint loaded since): new tensors, which a CUDA graph must be told are static."""
        replaced = len(self.states) != len(self.optimizers) or any(
            optimizer.state is not state for optimizer, state in zip(self.optimizers, self.states, strict=False))
        changed = replaced or any(p not in optimizer.state or len(optimizer.state[p]) == 0
                                  for optimizer in self.optimizers for group in optimizer.param_groups
                                  for p in group["params"])
        if changed:
            for optimizer in self.optimizers:
                init_adam_state(optimizer)
            self.states = [optimizer.state for optimizer in self.optimizers]
        for i, (optimizer, number, _, lr) in enumerate(self.groups):
            value = float(optimizer.param_groups[number]["lr"])
            if value != self.lrs[i]:
                lr.fill_(value)
                self.lrs[i] = value
        return changed

    def static_tensors(self) -> list[Tensor]:
        """What the step changes in place (parameters, Adam's state) and reads every call (the lr tensors)."""
        tensors = list(self.params)
        for optimizer in self.optimizers:
            for state in optimizer.state.values():
                tensors += [state["step"], state["exp_avg"], state["exp_avg_sq"]]
        return tensors + [lr for *_, lr in self.groups]

    def __call__(self, loss_fn: Callable[..., tuple[Tensor, Any]], *args: Any) -> tuple[Tensor, Any]:
        def loss_of(params: dict[str, Tensor], *inputs: Any) -> tuple[Tensor, Any]:
            return functional_call(self.holder, params, (loss_fn, *inputs))

        current = {name: p.detach() for name, p in zip(self.names, self.params, strict=True)}
        grads_by_name, (loss, aux) = grad_and_value(loss_of, has_aux=True)(current, *args)
        grads = [grads_by_name[name] for name in self.names]
        if self.max_grad_norm is not None:  # clip_grad_norm_'s arithmetic, without its host-side checks
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            grads = torch._foreach_mul(grads, (self.max_grad_norm / (norm + 1e-6)).clamp(max=1.0))
        with torch.no_grad():
            for optimizer, number, positions, lr in self.groups:
                group = optimizer.param_groups[number]
                beta1, beta2 = group["betas"]
                for i in positions:
                    p = self.params[i]
                    state = optimizer.state[p]
                    adam_update(p, grads[i], state["exp_avg"], state["exp_avg_sq"], state["step"], lr, beta1, beta2,
                                group["eps"])
        return loss.detach(), aux


def adam_update(p: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, step: Tensor, lr: Tensor,
                beta1: float, beta2: float, eps: float) -> None:
    """One Adam update of ``p`` in place, in the fused kernel's order of operations (the bias corrections in
    float64, as the kernel computes them on the host)."""
    step.add_(1)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    count = step.double()
    step_size = lr / (1 - beta1 ** count)
    denom = exp_avg_sq.sqrt() / (1 - beta2 ** count).sqrt() + eps
    p.sub_(step_size * exp_avg / denom)


def capture(program: F, steps: list[GradientStep], device: torch.device | str, name: str,
            static: list[Tensor] | None = None) -> F:
    """``program`` (built from the :class:`GradientStep` ``steps``) compiled as one captured program, run under
    ``no_grad`` (see the module docstring), falling back to eager with a warning if compiling fails. Before each
    call the steps are prepared (:meth:`GradientStep.prepare`: Adam's state, the learning rates). On CUDA: what
    the steps change in place, and the ``static`` tensors the program changes besides (a target network), are
    marked static for the CUDA graph (the steps' again after a checkpoint is loaded), each call begins a new
    cudagraph step, and the outputs are cloned (the next replay overwrites the graph's own)."""
    cuda = torch.device(device).type == "cuda"
    compiled = maybe_compile(torch.no_grad()(program), True, device, name, dynamic=False)
    first = [True]

    def call(*args: Any, **kwargs: Any) -> Any:
        for step in steps:
            if (step.prepare() or first[0]) and cuda:
                for tensor in step.static_tensors():
                    torch._dynamo.mark_static_address(tensor)
        if first[0] and cuda:
            for tensor in static or []:
                torch._dynamo.mark_static_address(tensor)
        first[0] = False
        if not cuda:
            return compiled(*args, **kwargs)
        torch.compiler.cudagraph_mark_step_begin()
        out = compiled(*args, **kwargs)
        return torch.utils._pytree.tree_map(lambda x: x.clone() if isinstance(x, Tensor) else x, out)

    call.__wrapped__ = program  # type: ignore[attr-defined]
    return call  # type: ignore[return-value]
