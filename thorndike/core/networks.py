"""Function approximators: orthogonally initialised MLPs and the Nature-DQN convolutional torso.

Lecture-notes concept: *function approximation for policies and values* (orthogonal initialisation
with per-layer gains, small-gain policy heads, and the Atari "Nature CNN" feature extractor).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeVar

import torch
from torch import Tensor, nn
from torch.optim import optimizer as _optimizer_module

__all__ = ["layer_init", "MLP", "mlp", "adam", "LeanAdam", "NatureCNN", "conv_output_size"]

M = TypeVar("M", bound=nn.Module)


def layer_init(layer: M, gain: float = math.sqrt(2), bias: float = 0.0) -> M:
    """Orthogonal weights scaled by ``gain`` and constant ``bias``, in place; returns the layer."""
    nn.init.orthogonal_(layer.weight, gain)
    if getattr(layer, "bias", None) is not None:
        nn.init.constant_(layer.bias, bias)
    return layer


def adam(
    params: Iterable[nn.Parameter], lr: float, eps: float = 1e-8, device: torch.device | str = "cpu"
) -> torch.optim.Adam:
    """Adam with the fused kernel on CPU and CUDA: one kernel per step instead of about ten ops per tensor.

    For the small networks of classic control the optimiser step is launch-bound: for PPO's two 64x64 MLPs on one
    CPU core the step takes 0.12 ms fused against 0.56 ms unfused, and :class:`LeanAdam` calls the fused kernel
    directly, without ``torch.optim.Adam.step``'s per-call bookkeeping (about a third of that again). Other devices
    get the default implementation.
    """
    if torch.device(device).type in ("cpu", "cuda"):
        return LeanAdam(params, lr=lr, eps=eps)
    return torch.optim.Adam(params, lr=lr, eps=eps)


class LeanAdam(torch.optim.Adam):
    """``torch.optim.Adam(fused=True)``, stepped by one direct call of the fused kernel per parameter group.

    ``Adam.step`` spends most of a small network's step outside the kernel (grouping the tensors by device and
    dtype, checking for complex numbers, on every call). Here each group's lists are gathered in one pass over its
    parameters, and the kernel and the step counters are Adam's, so the parameters and state are bit for bit those
    of ``torch.optim.Adam(fused=True)`` (a test compares them) and checkpoints are interchangeable. Adam's own step
    (with the profiler's record) runs instead for what the direct call does not cover: step hooks, a closure, the
    first step (which creates the state), a group whose tensors span devices or dtypes, and options the call here
    does not pass (amsgrad, a tensor learning rate, capturable, differentiable, decoupled weight decay).
    """

    def __init__(self, params: Iterable[nn.Parameter], lr: float = 1e-3, eps: float = 1e-8, **options: object):
        super().__init__(params, lr=lr, eps=eps, fused=True, **options)  # type: ignore[arg-type]

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def,override]
        if (closure is not None or self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks
                or _optimizer_module._global_optimizer_pre_hooks or _optimizer_module._global_optimizer_post_hooks):
            return _adam_step(self, closure)
        state = self.state
        batches = []
        for group in self.param_groups:
            if (group["amsgrad"] or group["capturable"] or group["differentiable"]
                    or group.get("decoupled_weight_decay") or isinstance(group["lr"], Tensor)):
                return _adam_step(self)
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            first = params[0]
            if any(p not in state or p.device != first.device or p.dtype != first.dtype for p in params):
                return _adam_step(self)  # the first step creates the state; mixed groups need Adam's grouping
            states = [state[p] for p in params]
            batches.append((group, params, states))
        for group, params, states in batches:
            steps = [s["step"] for s in states]
            torch._foreach_add_(steps, 1)
            beta1, beta2 = group["betas"]
            torch._fused_adam_(params, [p.grad for p in params], [s["exp_avg"] for s in states],
                               [s["exp_avg_sq"] for s in states], [], steps, lr=group["lr"], beta1=beta1,
                               beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"], amsgrad=False,
                               maximize=group["maximize"])
        return None

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every gradient (Optimizer's own zero_grad, with its profiler record, takes ~20 us for a small MLP);
        ``set_to_none=False`` zeroes them in place as Optimizer does."""
        if not set_to_none:
            super().zero_grad(set_to_none)
            return
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    # Optimizer wraps each class's step once in its hooks and profiler record (about 20 us a call); this step is
    # marked as wrapped already and hands any call with hooks to Adam's step, which runs them.
    step.hooked = True  # type: ignore[attr-defined]


def _adam_step(optimizer: torch.optim.Adam, closure=None):  # type: ignore[no-untyped-def]
    """``torch.optim.Adam``'s step, with the step hooks and profiler record that ``Optimizer`` wraps it in."""
    step = torch.optim.Adam.step
    if not getattr(step, "hooked", False):  # Adam's class is wrapped when its first instance is made
        step = torch.optim.Optimizer.profile_hook_step(step)
    return step(optimizer, closure)


class MLP(nn.Sequential):
    """The layers :func:`mlp` builds, run in order through each one's ``forward``.

    Why: at classic-control sizes (a batch of 16 to 512 rows through 32-wide layers) a forward pass costs more in
    ``nn.Module.__call__`` (hook checks and two Python frames per layer) than in arithmetic, and a rollout or an
    evaluation calls it once per env step. Calling each layer's ``forward`` runs the same ops, so the numbers are the
    same bit for bit. Hooks registered on the layers themselves are therefore not run (nothing in thorndike registers
    any); hooks on the MLP as a whole are.
    """

    def forward(self, x: Tensor) -> Tensor:
        for layer in self._modules.values():
            x = layer.forward(x)
        return x


def mlp(sizes: list[int], activation: type[nn.Module] = nn.Tanh, output_gain: float = 1.0) -> MLP:
    """MLP with layer widths ``sizes`` ([in, hidden..., out]); activation between layers, none at the end.

    Hidden layers use gain sqrt(2); the last uses ``output_gain`` (e.g. 0.01 for a policy head, 1 for values).
    Input [..., sizes[0]] -> output [..., sizes[-1]].
    """
    if len(sizes) < 2:
        raise ValueError(f"mlp needs at least input and output sizes, got {sizes}")
    layers: list[nn.Module] = []
    n_layers = len(sizes) - 1
    for i in range(n_layers):
        is_last = i == n_layers - 1
        gain = output_gain if is_last else math.sqrt(2)
        layers.append(layer_init(nn.Linear(sizes[i], sizes[i + 1]), gain))
        if not is_last:
            layers.append(activation())
    return MLP(*layers)


def conv_output_size(size: int, kernel_size: int, stride: int) -> int:
    """Output length of an unpadded convolution along one dimension of length ``size``."""
    return (size - kernel_size) // stride + 1


class NatureCNN(nn.Module):
    """Nature-DQN torso: [B, C, H, W] -> [B, features]; 84x84 frames by default, any size from 36x36 up.

    uint8 inputs are scaled by 1/255 inside forward (so replay buffers can store bytes);
    floating-point inputs are assumed to be already scaled.
    """

    # (out_channels, kernel_size, stride) of the three convolutions.
    CONVOLUTIONS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))

    def __init__(self, in_channels: int = 4, features: int = 512, height: int = 84, width: int = 84) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, out_height, out_width = in_channels, height, width
        for out_channels, kernel_size, stride in self.CONVOLUTIONS:
            layers += [layer_init(nn.Conv2d(channels, out_channels, kernel_size, stride)), nn.ReLU()]
            channels = out_channels
            out_height = conv_output_size(out_height, kernel_size, stride)
            out_width = conv_output_size(out_width, kernel_size, stride)
        if out_height < 1 or out_width < 1:
            raise ValueError(f"NatureCNN needs frames of at least 36x36 pixels, got {height}x{width}")
        self.out_features = features
        # The flattened size follows from the frame size: 84 -> 20 -> 9 -> 7 spatially gives 64 * 7 * 7 = 3136.
        layers += [nn.Flatten(), layer_init(nn.Linear(channels * out_height * out_width, features)), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        return self.net(x)
