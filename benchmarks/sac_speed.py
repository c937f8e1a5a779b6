"""SAC and TD3 update speed on one CPU thread: thorndike against Stable-Baselines3 and against the arithmetic limit.

What it measures, in one run, on Pendulum-v1 with one gradient step per env step (train_freq 1, gradient_steps 1,
batch 256) at two network sizes (hidden 256x256 and 64x64 for actor and each critic):

* env steps/s of thorndike SAC and TD3 and of SB3 SAC and TD3 with the same sizes and batch, timed over ``--steps``
  env steps after a warm-up (the uniform-action phase of 256 steps and ``--warmup`` learning steps, so that one-time
  costs such as the first Adam step and lazy allocations are not timed);
* the arithmetic limit: the float32 matrix-multiply rate of this CPU on 1 thread, measured here: once at the start
  (``torch.mm`` on square matrices of 256, 512 and 1024, the best of 5 timings: the quiet peak), and again right
  before each contender (512 x 512, the median of 5 timings over a second: the rate the load left at that moment,
  which the contender's fraction is taken of, so that a busy machine slows the limit and the contender alike),
  and the matrix-multiply FLOPs of one update at each size (:func:`update_flops`): the target computation
  (actor on s', both target critics), both critics forward and backward (weight gradients; input gradients except at
  the first layer), the actor forward, the critics' forward and backward to the action (frozen weights), the actor
  backward; TD3's actor part once every ``policy_delay`` = 2 updates, with Q_1 only. Elementwise work, Adam and the
  env are not counted: the limit is the rate no implementation of these matrix products on this core can exceed.
  Each contender is reported as steps/s and as a fraction of that limit.

The machine is shared: the 1-minute load average is printed next to each measurement, and contenders at one size are
run one after another, thorndike and SB3 alternating, so that load from other jobs hits both. thorndike runs its
native torch Pendulum (``backend="auto"``), SB3 Gymnasium's; an env step costs microseconds, an update milliseconds.

Run it (needs the ``[bench]`` extra for SB3):

    PYTHONPATH=$PWD .venv/bin/python benchmarks/sac_speed.py                 # 2000 timed steps per contender
    PYTHONPATH=$PWD .venv/bin/python benchmarks/sac_speed.py --steps 100     # a quick end-to-end check
    PYTHONPATH=$PWD .venv/bin/python benchmarks/sac_speed.py --compile       # + thorndike with compile=True

Output: one line per measurement, then a Markdown table written to ``benchmarks/results/sac_speed.md`` (and the
rows to ``sac_speed.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"
BATCH = 256
LEARNING_STARTS = 256
POLICY_DELAY = 2
OBS_DIM, ACTION_DIM = 3, 1  # Pendulum-v1


# ---- the arithmetic limit -------------------------------------------------------------------------------------------


def matmul_gflops(sizes: Sequence[int] = (256, 512, 1024), seconds: float = 0.5,
                  best: bool = True) -> dict[int, float]:
    """GFLOP/s of float32 ``torch.mm`` of two n x n matrices on the current thread count, the best (or the median)
    of 5 timings of about ``seconds`` / 5 each per size (2 n^3 FLOPs per product)."""
    rates = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        out = torch.empty(n, n)
        torch.mm(a, b, out=out)
        reps = 1
        while True:  # enough repeats for a timing of ~seconds/5
            start = time.perf_counter()
            for _ in range(reps):
                torch.mm(a, b, out=out)
            if time.perf_counter() - start > seconds / 5:
                break
            reps *= 2
        times = sorted(_timed(lambda a=a, b=b, out=out: torch.mm(a, b, out=out), reps) for _ in range(5))
        rates[n] = 2 * n**3 / (times[0] if best else times[2]) / 1e9
    return rates


def _timed(fn: Callable[[], Any], reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def _dense(widths: Sequence[int], batch: int) -> tuple[int, int, int]:
    """(forward, weight-gradient, input-gradient without the first layer) matrix-multiply FLOPs of an MLP with layer
    widths ``widths`` on ``batch`` rows: 2 B in out each per layer."""
    layers = [2 * batch * a * b for a, b in zip(widths[:-1], widths[1:], strict=True)]
    return sum(layers), sum(layers), sum(layers[1:])


def update_flops(algo: str, hidden: int, batch: int = BATCH, obs_dim: int = OBS_DIM, action_dim: int = ACTION_DIM,
                 policy_delay: int = POLICY_DELAY) -> int:
    """The matrix-multiply FLOPs of one SAC or TD3 gradient step with twin critics [obs + act, h, h, 1] and an actor
    [obs, h, h, act] (SAC: mean and log-std heads, [h, 2 act]), per env step (TD3's actor part divided by its
    delay), plus the actor's forward on the one observation it acts on."""
    actor_out = 2 * action_dim if algo == "sac" else action_dim
    a_fwd, a_wgrad, a_dgrad = _dense([obs_dim, hidden, hidden, actor_out], batch)
    c_fwd, c_wgrad, c_dgrad = _dense([obs_dim + action_dim, hidden, hidden, 1], batch)
    c_to_action = c_dgrad + 2 * batch * action_dim * hidden  # the first layer's gradient, action columns only
    targets = a_fwd + 2 * c_fwd  # a' ~ pi(s') (TD3: the target actor), both target critics
    critics = 2 * (c_fwd + c_wgrad + c_dgrad)
    act = _dense([obs_dim, hidden, hidden, actor_out], 1)[0]
    if algo == "sac":  # both critics at the reparameterised action (min Q_1, Q_2)
        actor = a_fwd + 2 * (c_fwd + c_to_action) + a_wgrad + a_dgrad
        return targets + critics + actor + act
    actor = a_fwd + c_fwd + c_to_action + a_wgrad + a_dgrad  # TD3: Q_1 only
    return targets + critics + actor // policy_delay + act


# ---- the contenders -------------------------------------------------------------------------------------------------


def thorndike_runner(algo: str, hidden: int, run_root: str, compile: bool = False) -> Callable[[int], None]:
    """Build thorndike's ``algo`` and return ``learn_more(n)``: n more env steps of learning. ``compile``: the run
    option (SAC's whole update one captured program, ``thorndike/core/capture.py``; compiled in the warm-up)."""
    import thorndike as th

    fields: dict[str, Any] = dict(hidden_sizes=(hidden, hidden), learning_starts=LEARNING_STARTS, batch_size=BATCH,
                                  buffer_size=100_000, train_freq=1, gradient_steps=1, lr=1e-3, log_every=10**9,
                                  buffer_in_checkpoint="never")  # SB3 saves nothing while it learns
    if algo == "td3":
        fields |= dict(policy_delay=POLICY_DELAY, action_noise="gaussian", noise_std=0.1)
    agent = th.make(algo, env="Pendulum-v1", seed=0, run_root=run_root, progress=False, tensorboard=False,
                    pictures=False, compile=compile, **fields)

    def learn_more(n: int) -> None:
        agent.learn(agent.global_step + n)

    return learn_more


def sb3_runner(algo: str, hidden: int, run_root: str) -> Callable[[int], None]:
    """Build SB3's ``algo`` with the same sizes and schedule and return ``learn_more(n)``."""
    import numpy as np
    from stable_baselines3 import SAC, TD3
    from stable_baselines3.common.noise import NormalActionNoise

    common: dict[str, Any] = dict(learning_starts=LEARNING_STARTS, batch_size=BATCH, buffer_size=100_000,
                                  train_freq=1, gradient_steps=1, learning_rate=1e-3, device="cpu", seed=0,
                                  policy_kwargs=dict(net_arch=[hidden, hidden]), verbose=0)
    if algo == "sac":
        model = SAC("MlpPolicy", "Pendulum-v1", **common)
    else:
        model = TD3("MlpPolicy", "Pendulum-v1", policy_delay=POLICY_DELAY,
                    action_noise=NormalActionNoise(np.zeros(ACTION_DIM), 0.1 * np.ones(ACTION_DIM)), **common)
    first = [True]

    def learn_more(n: int) -> None:
        model.learn(n, reset_num_timesteps=first[0])
        first[0] = False

    return learn_more


def measure(runner: Callable[[int], None], steps: int, warmup: int) -> float:
    """Env steps/s over ``steps`` env steps, after the uniform warm-up and ``warmup`` learning steps."""
    runner(LEARNING_STARTS + warmup)
    start = time.perf_counter()
    runner(steps)
    return steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="timed env steps per contender")
    parser.add_argument("--warmup", type=int, default=200, help="learning steps before the timing")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 64])
    parser.add_argument("--algos", nargs="+", default=["sac", "td3"], choices=["sac", "td3"])
    parser.add_argument("--no-sb3", action="store_true", help="thorndike only (SB3 not needed)")
    parser.add_argument("--compile", action="store_true",
                        help="also run thorndike with compile=True (the captured update; SAC only captures it)")
    parser.add_argument("--tag", default="")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    libraries: dict[str, Callable[..., Callable[[int], None]]] = {"thorndike": thorndike_runner}
    if args.compile:
        libraries["thorndike compile"] = lambda algo, hidden, root: thorndike_runner(algo, hidden, root, compile=True)
    if not args.no_sb3:
        try:
            import stable_baselines3  # noqa: F401
        except ImportError:
            sys.exit("stable-baselines3 is not installed: pip install -e '.[bench]' (or pass --no-sb3)")
        libraries["sb3"] = sb3_runner

    rates = matmul_gflops()
    gflops = max(rates.values())
    print("matmul GFLOP/s on 1 thread: " + ", ".join(f"{n}: {r:.1f}" for n, r in rates.items())
          + f" (limit uses {gflops:.1f}); load {os.getloadavg()[0]:.2f}", flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for hidden in args.sizes:
            for algo in args.algos:
                flops = update_flops(algo, hidden)
                order = list(libraries) if len(rows) % 2 == 0 else list(reversed(libraries))
                for library in order:
                    load = os.getloadavg()[0]
                    now = matmul_gflops((512,), seconds=1.0, best=False)[512]
                    limit = now * 1e9 / flops
                    runner = libraries[library](algo, hidden, str(Path(tmp) / f"{library}-{algo}-{hidden}"))
                    rate = measure(runner, args.steps, args.warmup)
                    row = dict(library=library, algo=algo, hidden=hidden, steps_per_s=rate, update_gflop=flops / 1e9,
                               limit_updates_per_s=limit, fraction_of_limit=rate / limit, load_1min=load,
                               steps=args.steps, matmul_gflops=now, peak_limit_updates_per_s=gflops * 1e9 / flops,
                               fraction_of_peak_limit=rate * flops / (gflops * 1e9))
                    rows.append(row)
                    print(f"{library:17s} {algo} {hidden}x{hidden}: {rate:7.1f} steps/s = {rate / limit:5.1%} of the "
                          f"limit {limit:.0f} updates/s ({flops / 1e9:.3f} GFLOP/update at {now:.1f} GFLOP/s; "
                          f"{row['fraction_of_peak_limit']:.1%} of the quiet peak's); load {load:.2f}", flush=True)

    command = "PYTHONPATH=$PWD .venv/bin/python benchmarks/sac_speed.py " + " ".join(sys.argv[1:])
    lines = [f"# SAC and TD3 update speed on Pendulum-v1, 1 thread (one gradient step per env step, batch {BATCH})",
             "", f"`{command}`", "",
             "matmul GFLOP/s at the start (best of 5): " + ", ".join(f"n={n}: {r:.1f}" for n, r in rates.items())
             + "; before each contender: the median of 5 at n=512 (the `GFLOP/s` column; the limit is taken of it)",
             "", "| library | algo | hidden | steps/s | GFLOP/update | GFLOP/s | limit updates/s | of the limit "
             "| of the quiet peak's | load |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['library']} | {r['algo']} | {r['hidden']}x{r['hidden']} | {r['steps_per_s']:.1f} | "
              f"{r['update_gflop']:.3f} | {r['matmul_gflops']:.1f} | {r['limit_updates_per_s']:.0f} | "
              f"{r['fraction_of_limit']:.1%} | {r['fraction_of_peak_limit']:.1%} | {r['load_1min']:.2f} |"
              for r in rows]
    ratios = []
    for r in rows:
        if r["library"].startswith("thorndike"):
            other = next((o for o in rows if o["library"] == "sb3" and o["algo"] == r["algo"]
                          and o["hidden"] == r["hidden"]), None)
            if other:
                ratios.append(f"- {r['algo']} {r['hidden']}x{r['hidden']}: {r['library']} / SB3 = "
                              f"{r['steps_per_s'] / other['steps_per_s']:.2f}")
    lines += ["", *ratios] if ratios else []
    name = f"sac_speed{'_' + args.tag if args.tag else ''}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps({"command": command, "matmul_gflops": rates, "rows": rows},
                                                     indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
