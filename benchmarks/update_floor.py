"""How fast can one gradient step be on this CPU? Floors for the DQN and SAC updates, outside any library.

Issues #14 and #15 set speed goals for one gradient step per env step (DQN at 3x Stable-Baselines3's env steps/s at
rl-zoo's CartPole network; SAC at 700 steps/s with 64x64 networks and at 85% of the matrix-multiply limit with
256x256). This script measures what the arithmetic and PyTorch's per-op cost allow, with no library around them:

- ``gemm``: only the matrix products of one update, at its shapes (forward passes, weight and input gradients), back
  to back: the arithmetic floor at the rate this CPU multiplies matrices of these shapes.
- ``eager``: a minimal, complete update in plain PyTorch (no replay buffer, no env, no logging): the batch is
  gathered from preallocated tensors by random indices, then the losses, one backward pass per optimiser, fused Adam
  steps and the target update. DQN: MLP Q-network with a target copy, Huber loss. SAC: twin critics batched in one
  ``baddbmm`` per layer (the scalar output layer as a broadcast product), tanh-Gaussian actor with the log-probability
  correction, temperature, soft target update.
- ``compiled``: the same update with its loss functions under ``torch.compile`` (the backward compiled with them).

Everything runs on one torch thread (the benchmarks' setting); each figure is the best of five timed windows.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/update_floor.py [--updates 300]

Writes ``benchmarks/results/update_floor.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

RESULTS = Path(__file__).resolve().parent / "results"
BUFFER = 100_000


def best_us(fn: Callable[[], object], n: int, windows: int = 5) -> float:
    """Microseconds per call of ``fn``: the best of ``windows`` windows of ``n`` calls, after a warm-up."""
    for _ in range(max(10, n // 10)):
        fn()
    best = math.inf
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def linear(fan_in: int, fan_out: int, members: int | None = None) -> tuple[Tensor, Tensor]:
    bound = 1 / math.sqrt(fan_in)
    shape = (fan_out, fan_in) if members is None else (members, fan_in, fan_out)
    bias = (fan_out,) if members is None else (members, 1, fan_out)
    return (torch.empty(shape).uniform_(-bound, bound).requires_grad_(),
            torch.empty(bias).uniform_(-bound, bound).requires_grad_())


def adam(params: list[Tensor]) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-3, fused=True)


# ---- DQN at rl-zoo's CartPole size: 4 -> 256 -> 256 -> 2, batch 64 ---------------------------------------------------


def dqn_update(hidden: int = 256, batch: int = 64, compile: bool = False) -> Callable[[], None]:
    obs_dim, n_actions = 4, 2
    layers = [linear(obs_dim, hidden), linear(hidden, hidden), linear(hidden, n_actions)]
    params = [p for layer in layers for p in layer]
    target = [p.detach().clone() for p in params]
    optimizer = adam(params)
    generator = torch.Generator().manual_seed(0)
    obs, next_obs = torch.randn(BUFFER, obs_dim), torch.randn(BUFFER, obs_dim)
    actions, rewards = torch.randint(0, n_actions, (BUFFER,)), torch.randn(BUFFER)
    terminated = torch.rand(BUFFER) < 0.02

    def q(weights: list[Tensor], x: Tensor) -> Tensor:
        for i in range(0, len(weights), 2):
            x = F.linear(x, weights[i], weights[i + 1])
            if i + 2 < len(weights):
                x = F.relu(x)
        return x

    def loss_fn(s: Tensor, a: Tensor, r: Tensor, s2: Tensor, done: Tensor) -> Tensor:
        with torch.no_grad():
            y = r + 0.99 * (~done) * q(target, s2).amax(1)
        return F.smooth_l1_loss(q(params, s).gather(1, a.unsqueeze(1)).squeeze(1), y)

    loss = torch.compile(loss_fn) if compile else loss_fn

    def update() -> None:
        i = torch.randint(0, BUFFER, (batch,), generator=generator)
        value = loss(obs[i], actions[i], rewards[i], next_obs[i], terminated[i])
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()

    return update


def dqn_gemms(hidden: int = 256, batch: int = 64) -> tuple[Callable[[], None], float]:
    """The matrix products of one DQN update (online and target forward, weight gradients of the three layers,
    input gradients of the upper two) and their FLOPs."""
    obs_dim, n_actions = 4, 2
    x, h, g, g_out = (torch.randn(batch, obs_dim), torch.randn(batch, hidden), torch.randn(batch, hidden),
                      torch.randn(batch, n_actions))
    w1, w2, w3 = torch.randn(hidden, obs_dim), torch.randn(hidden, hidden), torch.randn(n_actions, hidden)

    def gemms() -> None:
        for _ in range(2):
            x @ w1.t(), h @ w2.t(), h @ w3.t()
        g_out.t() @ h, g.t() @ h, g.t() @ x, g_out @ w3, g @ w2

    per_forward = obs_dim * hidden + hidden * hidden + hidden * n_actions
    flops = 2 * batch * (2 * per_forward + per_forward + (n_actions * hidden + hidden * hidden))
    return gemms, flops


# ---- SAC on Pendulum's sizes: obs 3, action 1, batch 256 ----------------------------------------------------------


def sac_update(hidden: int, batch: int = 256, compile: bool = False) -> Callable[[], None]:
    obs_dim, act_dim, n_critics = 3, 1, 2
    critic = [linear(obs_dim + act_dim, hidden, n_critics), linear(hidden, hidden, n_critics),
              linear(hidden, 1, n_critics)]
    critic_params = [p for layer in critic for p in layer]
    critic_target = [p.detach().clone() for p in critic_params]
    actor = [linear(obs_dim, hidden), linear(hidden, hidden), linear(hidden, 2 * act_dim)]
    log_alpha = torch.zeros((), requires_grad=True)
    critic_optimizer = adam(critic_params)
    actor_optimizer = adam([p for layer in actor for p in layer] + [log_alpha])
    generator = torch.Generator().manual_seed(0)
    obs, next_obs = torch.randn(BUFFER, obs_dim), torch.randn(BUFFER, obs_dim)
    actions, rewards = torch.rand(BUFFER, act_dim) * 2 - 1, torch.randn(BUFFER)
    terminated = torch.zeros(BUFFER)

    def critics(weights: list[Tensor], s: Tensor, a: Tensor, frozen: bool = False) -> Tensor:
        x = torch.cat([s, a], -1).unsqueeze(0).expand(n_critics, -1, -1)
        for i in range(0, 6, 2):
            w, b = (weights[i].detach(), weights[i + 1].detach()) if frozen else (weights[i], weights[i + 1])
            x = (x * w.transpose(1, 2)).sum(-1, keepdim=True) + b if i == 4 else F.relu(torch.baddbmm(b, x, w))
        return x.squeeze(-1)

    def policy(s: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        x = F.relu(F.linear(F.relu(F.linear(s, *actor[0])), *actor[1]))
        mean, log_std = F.linear(x, *actor[2]).chunk(2, -1)
        log_std = log_std.clamp(-20, 2)
        u = mean + log_std.exp() * noise
        log_prob = (-0.5 * noise.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        return torch.tanh(u), log_prob

    def critic_loss(s: Tensor, a: Tensor, r: Tensor, s2: Tensor, done: Tensor, noise: Tensor) -> Tensor:
        with torch.no_grad():
            a2, log_prob2 = policy(s2, noise)
            q_next = critics(critic_target, s2, a2).amin(0) - log_alpha.exp() * log_prob2
            y = r + 0.99 * (1 - done) * q_next
        return (critics(critic_params, s, a) - y).square().sum(0).mean()

    def actor_loss(s: Tensor, noise: Tensor) -> Tensor:
        a, log_prob = policy(s, noise)
        q_min = critics(critic_params, s, a, frozen=True).amin(0)
        alpha = log_alpha.exp().detach()
        return (alpha * log_prob - q_min).mean() - (log_alpha * (log_prob.detach() - act_dim)).mean()

    critic_fn, actor_fn = (torch.compile(critic_loss), torch.compile(actor_loss)) if compile else \
        (critic_loss, actor_loss)

    def update() -> None:
        i = torch.randint(0, BUFFER, (batch,), generator=generator)
        s = obs[i]
        value = critic_fn(s, actions[i], rewards[i], next_obs[i], terminated[i],
                          torch.randn(batch, act_dim, generator=generator))
        critic_optimizer.zero_grad(set_to_none=True)
        value.backward()
        critic_optimizer.step()
        value = actor_fn(s, torch.randn(batch, act_dim, generator=generator))
        actor_optimizer.zero_grad(set_to_none=True)
        value.backward()
        actor_optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(critic_target, critic_params, 0.005)

    return update


def sac_gemms(hidden: int, batch: int = 256) -> Callable[[], None]:
    """The matrix products of one SAC update at ``hidden`` (the hidden layers' products, which carry nearly all of
    the FLOPs): twin-critic hidden layer forward at (s', a'), (s, a) and (s, a~), its weight and input gradients for
    the critics' loss and its input gradient for the actor's; the actor's hidden layer forward at s' and s and its
    two gradients."""
    h2, g2, w2 = torch.randn(2, batch, hidden), torch.randn(2, batch, hidden), torch.randn(2, hidden, hidden)
    h, g, w = torch.randn(batch, hidden), torch.randn(batch, hidden), torch.randn(hidden, hidden)

    def gemms() -> None:
        for _ in range(3):
            torch.bmm(h2, w2)
        torch.bmm(h2.transpose(1, 2), g2), torch.bmm(g2, w2.transpose(1, 2)), torch.bmm(g2, w2.transpose(1, 2))
        h @ w.t(), h @ w.t(), g.t() @ h, g @ w

    return gemms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=300, help="updates per timed window (256x256 SAC: a fifth)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for update_floor.{md,json}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    rows = []
    gemms, flops = dqn_gemms()
    rows.append(("DQN 256x256, batch 64", "gemm", best_us(gemms, args.updates), flops))
    for mode in ("eager", "compiled"):
        rows.append(("DQN 256x256, batch 64", mode, best_us(dqn_update(compile=mode == "compiled"), args.updates),
                     None))
    for hidden in (64, 256):
        n = args.updates if hidden == 64 else max(20, args.updates // 5)
        rows.append((f"SAC {hidden}x{hidden}, batch 256", "gemm", best_us(sac_gemms(hidden), n),
                     2 * 256 * hidden * hidden * (2 * 3 + 2 * 2 + 2 * 1 + 2 + 2)))
        for mode in ("eager", "compiled"):
            rows.append((f"SAC {hidden}x{hidden}, batch 256", mode,
                         best_us(sac_update(hidden, compile=mode == "compiled"), n), None))
    lines = ["# Floors of one gradient step on this CPU (1 torch thread)", "",
             "`PYTHONPATH=$PWD .venv/bin/python benchmarks/update_floor.py`"
             f" ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; torch {torch.__version__}; "
             f"load average before {load:.2f}, after {os.getloadavg()[0]:.2f})", "",
             "| update | what | us per update | updates/s | GFLOP/s |", "| --- | --- | ---: | ---: | ---: |"]
    for name, mode, us, gemm_flops in rows:
        rate = f"{gemm_flops / us / 1e3:.0f}" if gemm_flops else ""
        lines.append(f"| {name} | {mode} | {us:,.0f} | {1e6 / us:,.0f} | {rate} |")
    lines += ["", "gemm: the update's matrix products alone; eager: a minimal complete update in plain PyTorch; "
              "compiled: the same with its losses under torch.compile. No env step, no replay buffer, no logging: "
              "an env step per update comes on top.", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "update_floor.md").write_text("\n".join(lines))
    (args.out / "update_floor.json").write_text(json.dumps(
        [dict(update=name, what=mode, us=us, gemm_flops=fl) for name, mode, us, fl in rows], indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
