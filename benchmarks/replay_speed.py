"""Replay speed: microseconds per off-policy step's buffer work (one ``add`` of a vectorised step, one ``sample``
of a minibatch, and for prioritized replay one ``update_priorities``), thorndike's buffers against SB3's.

Cases: CartPole-like transitions (4 float32 observations, a Discrete action) with the plain buffer, n-step returns
(n = 3) and prioritized replay; Atari-like ``[4, 84, 84]`` uint8 stacks stored whole and as single frames
(``frame_stack=4``). SB3's ``ReplayBuffer`` (NumPy storage, tensors made on each sample) is timed on the same
transitions, when stable-baselines3 is installed. Each figure is the best of three timed windows after a warm-up
(the machine may be shared; the load average is recorded). The buffers are filled to 10% of their capacity first.

    .venv/bin/python benchmarks/replay_speed.py [--device cuda] [--steps 2000] [--batch-size 32]

Writes ``benchmarks/results/replay_speed.json`` and ``replay_speed.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from thorndike.core.replay import PrioritizedReplayBuffer, ReplayBuffer

RESULTS = Path(__file__).parent / "results"
CAPACITY = 100_000


def time_best(step, steps: int, sync) -> float:
    for _ in range(steps // 10):
        step()
    best = float("inf")
    for _ in range(3):
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        best = min(best, (time.perf_counter() - start) / steps)
    return best * 1e6


def thorndike_case(kind: str, obs_shape, dtype, n_envs: int, device: str, steps: int, batch_size: int) -> float:
    kwargs = {"n_envs": n_envs, "device": device}
    if kind == "n_step=3":
        kwargs["n_step"] = 3
    if kind == "frames":
        kwargs["frame_stack"] = obs_shape[0]
    make = PrioritizedReplayBuffer if kind == "prioritized" else ReplayBuffer
    buffer = make(CAPACITY, (obs_shape, dtype), ((), torch.int64), **kwargs)
    g = torch.Generator(device=device).manual_seed(0)
    obs = torch.zeros((n_envs, *obs_shape), dtype=dtype, device=device)
    actions = torch.zeros(n_envs, dtype=torch.int64, device=device)
    rewards = torch.zeros(n_envs, device=device)
    done = torch.zeros(n_envs, dtype=torch.bool, device=device)
    for _ in range(CAPACITY // 10 // n_envs):
        buffer.add(obs, actions, rewards, obs, done, done)

    def step() -> None:
        buffer.add(obs, actions, rewards, obs, done, done)
        if kind == "prioritized":
            batch = buffer.sample(batch_size, g, beta=0.5)
            buffer.update_priorities(batch["indices"], batch["rewards"])
        else:
            buffer.sample(batch_size, g)

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    return time_best(step, steps, sync)


def sb3_case(obs_shape, n_envs: int, device: str, steps: int, batch_size: int, image: bool) -> float | None:
    try:
        import gymnasium as gym
        import numpy as np
        from stable_baselines3.common.buffers import ReplayBuffer as SB3ReplayBuffer
    except ImportError:
        return None
    space = (gym.spaces.Box(0, 255, obs_shape, np.uint8) if image
             else gym.spaces.Box(-1, 1, obs_shape, np.float32))
    buffer = SB3ReplayBuffer(CAPACITY, space, gym.spaces.Discrete(2), device=device, n_envs=n_envs)
    obs = np.zeros((n_envs, *obs_shape), space.dtype)
    actions, rewards, dones = np.zeros((n_envs, 1)), np.zeros(n_envs), np.zeros(n_envs)
    infos = [{} for _ in range(n_envs)]
    for _ in range(CAPACITY // 10 // n_envs):
        buffer.add(obs, obs, actions, rewards, dones, infos)

    def step() -> None:
        buffer.add(obs, obs, actions, rewards, dones, infos)
        buffer.sample(batch_size)

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    return time_best(step, steps, sync)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n-envs", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    vector, image = ((4,), torch.float32), ((4, 84, 84), torch.uint8)
    for label, (shape, dtype), kind in [("CartPole", vector, "plain"), ("CartPole", vector, "n_step=3"),
                                        ("CartPole", vector, "prioritized"), ("Atari", image, "plain"),
                                        ("Atari", image, "frames")]:
        us = thorndike_case(kind, shape, dtype, args.n_envs, args.device, args.steps, args.batch_size)
        rows.append({"case": label, "buffer": f"thorndike {kind}", "us_per_step": round(us, 1)})
        print(rows[-1], flush=True)
    for label, (shape, _), is_image in [("CartPole", vector, False), ("Atari", image, True)]:
        us = sb3_case(shape, args.n_envs, args.device, args.steps, args.batch_size, is_image)
        if us is not None:
            rows.append({"case": label, "buffer": "SB3 ReplayBuffer", "us_per_step": round(us, 1)})
            print(rows[-1], flush=True)
    meta = {"device": args.device, "batch_size": args.batch_size, "n_envs": args.n_envs, "capacity": CAPACITY,
            "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
            "load_average": os.getloadavg()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "replay_speed.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = ["# Replay speed", "", f"One add of {args.n_envs} transition(s) + one sample of {args.batch_size} "
             f"(+ a priority update for prioritized replay) on {args.device}, torch {torch.__version__}, one thread, "
             f"load average {meta['load_average'][0]:.1f}; best of three windows of {args.steps} steps.", "",
             "| case | buffer | us per step |", "| --- | --- | ---: |"]
    lines += [f"| {r['case']} | {r['buffer']} | {r['us_per_step']:.0f} |" for r in rows]
    (RESULTS / "replay_speed.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
