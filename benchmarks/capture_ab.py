"""The captured gradient step (thorndike.core.capture) against the eager one, A/B in one process, interleaved.

    .venv/bin/python benchmarks/capture_ab.py --device cpu      # or cuda; --repeats 5; --out benchmarks/results

Rows (each variant timed over the same number of calls, the variants interleaved ``--repeats`` times; the median
of the repeats is reported, and each variant's ratio to the eager one):

- PPO, ``ppo_cartpole_fast`` on the native CartPole: one iteration (collect, GAE, update: 6 epochs of one 512-sample
  minibatch). Variants: eager (compile off); today's compile path (the run option ``compile=True`` with the
  captured step turned off: compiled collection and loss, eager backward and Adam); captured (``compile=True``:
  compiled collection, compiled GAE, the captured gradient step).
- DQN, ``dqn_cartpole_fast``: one gradient step (sampling a minibatch included), eager against captured.
- SAC, Pendulum-v1's tuned entry (64x64, batch 256): one gradient step (critics, actor, temperature, targets).

Compiling is not timed: every variant runs a few untimed calls first (on a 2-core CPU each program takes 20-40 s
to compile). Writes ``<out>/capture_ab_<device>.md`` and prints it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn: Callable[[], Any], calls: int, device: str) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls (the device synchronised at both ends)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls


def compare(variants: dict[str, Callable[[], Any]], calls: int, repeats: int, device: str) -> dict[str, float]:
    """Median seconds per call of each variant, the variants interleaved; three untimed calls of each first."""
    for fn in variants.values():
        for _ in range(3):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            samples[name].append(timed(fn, calls, device))
    return {name: statistics.median(values) for name, values in samples.items()}


def make(algo: str, device: str, run_root: str, **fields: Any) -> Any:
    import thorndike as th

    return th.make(algo, device=device, seed=0, progress=False, tensorboard=False, run_root=run_root, **fields)


def ppo_iteration(agent: Any) -> Callable[[], None]:
    def iteration() -> None:
        agent.collect()
        advantages, returns = agent.targets()
        agent.update(advantages, returns)

    return iteration


def measure(device: str, repeats: int, run_root: str, algos: tuple[str, ...] = ("ppo", "dqn", "sac")) -> list[dict]:
    """The rows of the module docstring: for each, the variants' seconds per call and the ratios to eager."""
    rows = []
    if "ppo" in algos:
        fast = dict(env="CartPole-v1", config="ppo_cartpole_fast")
        eager = make("ppo", device, run_root, **fast)
        today = make("ppo", device, run_root, compile=True, **fast)
        today.capture = False  # the compile path before the captured step: compiled collection and loss
        captured = make("ppo", device, run_root, compile=True, **fast)
        captured.capture = True
        rows.append(dict(name="PPO iteration (ppo_cartpole_fast: collect 64 x 8, GAE, 6 steps of 512)",
                         times=compare({"eager": ppo_iteration(eager), "compile, step not captured":
                                        ppo_iteration(today), "captured": ppo_iteration(captured)},
                                       20, repeats, device)))
    if "dqn" in algos:
        eager = make("dqn", device, run_root, env="CartPole-v1", config="dqn_cartpole_fast", learning_starts=256)
        eager.learn(260)
        captured = make("dqn", device, run_root, env="CartPole-v1", config="dqn_cartpole_fast", learning_starts=256)
        captured.learn(260)
        captured.capture = True
        rows.append(dict(name="DQN gradient step (dqn_cartpole_fast: 64x64, batch 64)",
                         times=compare({"eager": eager.gradient_step, "captured": captured.gradient_step}, 200,
                                       repeats, device)))
    if "sac" in algos:
        eager = make("sac", device, run_root, env="Pendulum-v1")
        eager.learn(300)
        captured = make("sac", device, run_root, env="Pendulum-v1")
        captured.learn(300)
        captured.capture = True
        rows.append(dict(name="SAC gradient step (Pendulum-v1 tuned: 64x64, batch 256)",
                         times=compare({"eager": eager.gradient_step, "captured": captured.gradient_step}, 100,
                                       repeats, device)))
    for row in rows:
        row["ratios"] = {name: t / row["times"]["eager"] for name, t in row["times"].items()}
    return rows


def table(rows: list[dict]) -> list[str]:
    lines = ["| what | variant | us per call | / eager |", "| --- | --- | ---: | ---: |"]
    for row in rows:
        for name, seconds in row["times"].items():
            lines.append(f"| {row['name']} | {name} | {seconds * 1e6:,.0f} | {row['ratios'][name]:.2f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--algos", nargs="+", default=["ppo", "dqn", "sac"], choices=["ppo", "dqn", "sac"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="capture-ab-") as run_root:
        rows = measure(args.device, args.repeats, run_root, tuple(args.algos))
    command = " ".join(["python benchmarks/capture_ab.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [f"# Captured gradient step against eager ({args.device})", "", f"    {command}", "",
             f"torch {torch.__version__}, {args.threads} thread(s); median of {args.repeats} interleaved repeats; "
             "compiling not timed.", "", *table(rows), ""]
    args.out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    (args.out / f"capture_ab_{args.device.replace(':', '')}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
