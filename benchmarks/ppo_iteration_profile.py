"""Where one PPO iteration's time goes: the fast CartPole config on the native env, by part and by torch operator.

    .venv/bin/python benchmarks/ppo_iteration_profile.py [--iterations 40] [--device cpu]

Two measurements of the same kind of run (``ppo_cartpole_fast``: 64 copies x 8 steps, 6 full-batch gradient steps
per iteration; checkpoints off, so that only the learning loop is measured), after an untimed warm-up:

1. by part: wall seconds inside the agent's own methods and the library calls they make (collect: policy sampling,
   env step, observation statistics, the critic's values, the rollout's finiteness check; update: loss forward,
   backward, gradient clipping, Adam, the per-iteration diagnostics), each wrapped on its instance (or, for
   ``Tensor.backward`` and ``clip_grad_norm_``, where PPO looks them up) with ``time.perf_counter``;
2. by operator: ``torch.profiler`` over the same number of iterations (self CPU time per aten operator; the
   profiler's own overhead inflates the small ones).

On CUDA each wrapped call ends with a synchronisation, so the parts are the GPU's time, not the launches'.
Writes ``benchmarks/results/ppo_iteration_profile.md`` (the command at the top).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

import thorndike as th
import thorndike.core.rollout as rollout_module
from thorndike.registry import read_config_file

RESULTS = Path(__file__).resolve().parent / "results"
CONFIG: dict[str, Any] = {"tuned": False, **read_config_file("ppo_cartpole_fast")}


def build(seed: int, device: str, run_root: str) -> Any:
    return th.make("ppo", env="CartPole-v1", seed=seed, backend="torch", device=device, progress=False,
                   tensorboard=False, pictures=False, run_root=run_root, checkpoint_every=2**40, **CONFIG)


def by_part(iterations: int, device: str, run_root: str) -> tuple[float, dict[str, tuple[float, int]]]:
    """Learn ``iterations`` iterations with the parts wrapped; the wall seconds and (seconds, calls) per part."""
    seconds: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    shared: list[tuple[Any, str, Any]] = []  # module- and class-level attributes, put back afterwards

    def wrap(owner: Any, name: str, label: str) -> None:
        inner = getattr(owner, name)
        if owner in (torch.Tensor, nn.utils, rollout_module):
            shared.append((owner, name, inner))

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                sync()
                seconds[label] += time.perf_counter() - start
                calls[label] += 1

        setattr(owner, name, timed)

    agent = build(0, device, run_root)
    # The hot functions are looked up through these names (the rollout step and the loss are bound at build).
    wrap(agent, "sample_actions", "collect / policy: sample a ~ pi(.|s), log pi")
    agent.rollout_step = agent.sample_actions
    wrap(agent, "minibatch_loss", "update / loss forward")
    agent.loss = agent.minibatch_loss
    for name, label in (("collect", "collect (all)"), ("targets", "targets (GAE)"), ("update", "update (all)"),
                        ("diagnostics", "update / diagnostics (KL, clip fraction, entropy; read on the host)")):
        wrap(agent, name, label)
    wrap(agent.interaction, "step", "collect / env step (+ reward scaling, episode ledger)")
    wrap(agent.model.normalizer, "update", "collect / observation statistics update")
    wrap(agent.model, "value", "collect / critic values V(s), V(s') (3 calls)")
    wrap(agent.optimizer, "step", "update / Adam step")
    wrap(rollout_module, "check_stored", "collect / finiteness check of the rollout")
    wrap(torch.Tensor, "backward", "update / backward")
    wrap(nn.utils, "clip_grad_norm_", "update / clip_grad_norm_")
    try:
        start = time.perf_counter()
        agent.learn(iterations * agent.config.n_envs * agent.config.n_steps)
        sync()
        wall = time.perf_counter() - start
    finally:
        for owner, name, original in shared:
            setattr(owner, name, original)
    return wall, {k: (seconds[k], calls[k]) for k in seconds}


def by_operator(iterations: int, device: str, run_root: str, rows: int) -> str:
    agent = build(1, device, run_root)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        agent.learn(iterations * agent.config.n_envs * agent.config.n_steps)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=40, help="iterations measured (each way)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--rows", type=int, default=25, help="operators listed")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --device cpu")
    torch.set_num_threads(1)
    command = " ".join(["python", *(os.path.relpath(a) if a == sys.argv[0] else a for a in sys.argv)])
    with tempfile.TemporaryDirectory(prefix="ppo-profile-") as run_root:
        build(9, args.device, run_root).learn(4096)  # warm-up
        wall, parts = by_part(args.iterations, args.device, run_root)
        ops = by_operator(args.iterations, args.device, run_root, args.rows)
    n = args.iterations
    lines = ["# PPO iteration profile: ppo_cartpole_fast on the native CartPole", "", "Command:", "", f"    {command}",
             "", f"{n} iterations of 512 env steps (64 copies x 8) and 6 full-batch gradient steps, checkpoints off, "
             f"on {args.device}: learn {wall:.3f} s, **{wall / n * 1e3:.2f} ms per iteration**.", "",
             "| part | ms per iteration | share | calls per iteration | us per call |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for label, (sec, count) in sorted(parts.items()):
        lines.append(f"| {label} | {sec / n * 1e3:.2f} | {sec / wall:.0%} | {count / n:g} | {sec / count * 1e6:.0f} |")
    lines += ["", "The sub-parts (`collect / ...`, `update / ...`) are inside their part; what a part spends outside "
              "its listed sub-parts is its own glue (buffer writes, minibatch dicts, the flat batch, the log row).", "",
              f"By operator (torch.profiler, {n} more iterations, self CPU time):", "", "```", ops.strip(), "```", "",
              f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
              f"(1 thread), thorndike {th.__version__}; load average (1 min) {os.getloadavg()[0]:.2f}", ""]
    text = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ppo_iteration_profile.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
