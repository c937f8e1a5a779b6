"""Environment throughput: thorndike's native batched CartPole against its peers, side by side in one run.

Steps per second (transitions of all copies together) with uniformly random actions, for 1 to 65,536 copies:

- thorndike native ``CartPole`` (``th.envs.make("CartPole-v1", n)``, torch eager, same-step autoreset on the tensor);
- the same env played ``--rollout-steps`` steps at a time as one ``torch.compile``d program
  (:class:`thorndike.envs.batched.rollout.BatchedRollout`: the random actions, the env step, autoreset and the
  ``[T, N]`` outputs of every step; its random numbers drawn before each call, outside the program, and timed);
- Gymnasium ``SyncVectorEnv`` of ``CartPoleEnv`` copies (one Python object per copy; run up to ``--gymnasium-max``);
- the same through thorndike's ``GymnasiumVecEnv`` (``backend="gymnasium"``: tensors out, episode statistics), the
  alternative ``th.envs.make`` offers to the native env;
- Gymnasium's own NumPy-batched ``CartPoleVectorEnv`` (``gym.make_vec(..., vectorization_mode="vector_entry_point")``);
- gymnax ``CartPole-v1`` under ``jax.jit`` + ``vmap`` with the step loop in ``lax.scan`` (compiled end to end), when
  ``jax`` and ``gymnax`` can be imported here or by the interpreter given with ``--gymnax-python``. On a CPU it
  runs twice, with XLA on every core and pinned to one core, and the better rate per size counts. gymnax is not a
  thorndike dependency: install it in a separate virtual environment, e.g.
  ``python3.11 -m venv /tmp/gymnax-venv && /tmp/gymnax-venv/bin/pip install "jax[cpu]" gymnax six``.
  That scan sums each step's rewards and keeps nothing else, so XLA stores no per-step outputs; a second gymnax row,
  "storing transitions", returns each step's observations, actions, rewards, terminations, truncations and final
  observations stacked ``[T, N]``, as a training rollout does and as the compiled rollout stores its outputs. The
  issue's goal reads against the first; the second is reported beside it.

Each figure is the best of three timed windows after a warm-up (the machine may be shared; the load average is
recorded). Every peer draws its random actions inside the timed loop and resets ended episodes. Compilation (the
compiled rollout's and gymnax's) is done before timing and reported, not counted.

    .venv/bin/python benchmarks/env_throughput.py [--gymnax-python /tmp/gymnax-venv/bin/python] [--seconds 1.0]

``--device cuda`` runs the two thorndike native contenders on the GPU (the compiled rollout with CUDA graphs,
``mode="reduce-overhead"``) and gymnax with ``JAX_PLATFORMS=cuda``; the Gymnasium peers stay on the CPU. For example
``--device cuda --sizes 4096 65536 1048576 4194304 --gymnasium-max 0``.

Writes ``benchmarks/results/env_throughput.md`` (table), ``.json`` (every rate) and ``.png`` (log-log plot).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import thorndike as th
from thorndike.envs.batched import ENVS
from thorndike.envs.batched.rollout import BatchedRollout

RESULTS = Path(__file__).resolve().parent / "results"
NATIVE = "thorndike native (torch eager)"
COMPILED = "thorndike native (compiled rollouts)"
SYNC = "Gymnasium SyncVectorEnv"
ADAPTER = "thorndike GymnasiumVecEnv"
NUMPY = "Gymnasium CartPoleVectorEnv (NumPy)"
GYMNAX = "gymnax (jax jit + vmap + scan)"
GYMNAX_STORING = "gymnax storing transitions"
PEERS = (NATIVE, COMPILED, GYMNAX, GYMNAX_STORING, NUMPY, SYNC, ADAPTER)

# Run by the gymnax interpreter: argv = [sizes as JSON, transitions per timed call, "sum" or "store"]. Prints one
# JSON line.
GYMNAX_SCRIPT = r"""
import json, sys, time
from importlib.metadata import version
import jax, gymnax

sizes, transitions, store = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "store"
env, params = gymnax.make("CartPole-v1")


def build(n, length):
    def rollout(key):
        key, reset_key = jax.random.split(key)
        _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, n), params)

        def one_step(carry, _):
            key, state = carry
            key, action_key, step_key = jax.random.split(key, 3)
            actions = jax.random.randint(action_key, (n,), 0, 2)
            # gymnax's step resets the copies that end (its autoreset), like thorndike's same-step autoreset
            out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(step_key, n), state, actions, params)
            obs, state, reward, terminated, truncated, info = out
            if store:  # each step's transition, stacked [T, N] by the scan
                return (key, state), (obs, actions, reward, terminated, truncated, info["final_observation"])
            return (key, state), reward.sum()

        _, outputs = jax.lax.scan(one_step, (key, state), None, length=length)
        return outputs if store else outputs.sum()

    return jax.jit(rollout)


results = {}
for n in sizes:
    length = min(max(transitions // n, 50), 200_000)
    start = time.perf_counter()
    compiled = build(n, length).lower(jax.random.PRNGKey(0)).compile()
    compile_s = time.perf_counter() - start
    times = []
    for seed in range(1, 4):
        start = time.perf_counter()
        jax.block_until_ready(compiled(jax.random.PRNGKey(seed)))
        times.append(time.perf_counter() - start)
    results[n] = {"steps_per_s": n * length / min(times), "compile_s": compile_s}
versions = {"jax": jax.__version__, "gymnax": version("gymnax"), "devices": str(jax.devices())}
print(json.dumps({"versions": versions, "results": results}))
"""


def best_rate(step: Callable[[], None], n: int, seconds: float, sync: Callable[[], None] = lambda: None) -> float:
    """Transitions per second of ``step`` (one call steps ``n`` transitions): best of three windows of ``seconds /
    3``. ``sync`` waits for the device's queued work (a CUDA stream), at the edges of every window."""
    for _ in range(3):
        step()
    sync()
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < 0.05:
        step()
        calls += 1
    sync()
    calls_per_window = max(1, int(calls * (seconds / 3) / (time.perf_counter() - start)))
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls_per_window):
            step()
        sync()
        best = max(best, n * calls_per_window / (time.perf_counter() - start))
    return best


def device_sync(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)


def native_rate(n: int, seconds: float, env_id: str = "CartPole-v1", device: str = "cpu") -> float:
    env = th.envs.make(env_id, n_envs=n, seed=0, backend="torch", device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    space = env.single_action_space
    if isinstance(space, gym.spaces.Discrete):
        def step() -> None:
            env.step(torch.randint(0, int(space.n), (n,), generator=generator, device=device))
    else:
        def step() -> None:
            env.step(torch.rand((n, *space.shape), generator=generator, device=device) * 2.0 - 1.0)
    return best_rate(step, n, seconds, device_sync(device))


def compiled_rate(n: int, seconds: float, rollout_steps: int, device: str = "cpu") -> tuple[float, float]:
    """Transitions per second of compiled ``rollout_steps``-step rollouts of ``n`` copies, and the compile time."""
    torch._dynamo.reset()  # a fresh compile per size (torch caches compiled code per function, up to a limit)
    env = th.envs.make("CartPole-v1", n_envs=n, seed=0, backend="torch", device=device)
    rollout = BatchedRollout(env, rollout_steps, compile=True)
    generator = torch.Generator(device=device).manual_seed(0)
    start = time.perf_counter()
    rollout(generator)
    device_sync(device)()
    compile_s = time.perf_counter() - start
    return best_rate(lambda: rollout(generator), n * rollout_steps, seconds, device_sync(device)), compile_s


def sync_rate(n: int, seconds: float) -> float:
    venv = SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(n)], autoreset_mode=AutoresetMode.SAME_STEP)
    venv.reset(seed=0)
    venv.action_space.seed(0)
    rate = best_rate(lambda: venv.step(venv.action_space.sample()), n, seconds)
    venv.close()
    return rate


def adapter_rate(n: int, seconds: float) -> float:
    env = th.envs.make("CartPole-v1", n_envs=n, seed=0, backend="gymnasium")
    generator = torch.Generator().manual_seed(0)
    rate = best_rate(lambda: env.step(torch.randint(0, 2, (n,), generator=generator)), n, seconds)
    env.close()
    return rate


def numpy_rate(n: int, seconds: float) -> float:
    venv = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    rate = best_rate(lambda: venv.step(rng.integers(0, 2, n)), n, seconds)
    venv.close()
    return rate


def gymnax_python(option: str | None) -> tuple[str | None, str]:
    """The interpreter that can run gymnax, or None and the reason why not."""
    candidates = [option] if option else [sys.executable]
    for python in candidates:
        probe = subprocess.run([python, "-c", "import jax, gymnax"], capture_output=True, text=True)
        if probe.returncode == 0:
            return python, ""
        reason = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"exit {probe.returncode}"
    where = f"--gymnax-python {option}" if option else "this interpreter (and no --gymnax-python was given)"
    return None, f"gymnax peer not run: jax/gymnax cannot be imported by {where}: {reason}"


def gymnax_rates(python: str, sizes: list[int], transitions: int, device: str = "cpu",
                 mode: str = "sum") -> tuple[dict[int, float], dict, dict[int, float], dict[int, str]]:
    """gymnax's rates per size, and how each was run (``mode``: "sum" the rewards, or "store" every transition). On
    the CPU gymnax runs twice, with XLA free to use every core and pinned to one core (as torch's one thread), and
    keeps the better rate per size: on this 2-core machine XLA's thread pool made the scan 1.7x slower than one
    pinned core (4,096 copies: 7.9M against 13.9M steps/s)."""
    platform_name = "cuda" if torch.device(device).type == "cuda" else "cpu"
    settings: list[tuple[str, Callable[[], None] | None]] = [("all cores", None)]
    if platform_name == "cpu" and hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        settings.append(("one core", lambda: os.sched_setaffinity(0, {core})))
    rates: dict[int, float] = {}
    compile_s: dict[int, float] = {}
    how: dict[int, str] = {}
    versions: dict = {}
    for label, pin in settings:
        out = subprocess.run([python, "-c", GYMNAX_SCRIPT, json.dumps(sizes), str(transitions), mode],
                             capture_output=True,
                             text=True, check=True, env={**os.environ, "JAX_PLATFORMS": platform_name},
                             preexec_fn=pin)
        report = json.loads(out.stdout.strip().splitlines()[-1])
        versions = report["versions"]
        for n, r in report["results"].items():
            if r["steps_per_s"] > rates.get(int(n), 0.0):
                rates[int(n)], compile_s[int(n)], how[int(n)] = r["steps_per_s"], r["compile_s"], label
    return rates, versions, compile_s, how


def fmt(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:,.0f}"


# The ratio columns: (numerator, denominator, heading).
RATIOS = ((NATIVE, SYNC, "native / SyncVectorEnv"), (NATIVE, GYMNAX, "native / gymnax"),
          (COMPILED, NUMPY, "compiled / NumPy"), (COMPILED, GYMNAX, "compiled / gymnax"),
          (COMPILED, GYMNAX_STORING, "compiled / gymnax storing"))


def write_table(path: Path, sizes: list[int], rates: dict[str, dict[int, float]], notes: list[str],
                native_envs: dict[str, float], native_envs_n: int, device: str) -> None:
    peers = [p for p in PEERS if rates.get(p)]
    ratios = [(a, b, heading) for a, b, heading in RATIOS if rates.get(a) and rates.get(b)]
    lines = [f"# Environment throughput: CartPole-v1, random actions ({device})", "",
             "Transitions per second (all copies together), best of three timed windows; higher is better.", "",
             "| copies | " + " | ".join(peers + [heading for _, _, heading in ratios]) + " |",
             "| ---: | " + " | ".join("---:" for _ in peers + ratios) + " |"]
    for n in sizes:
        cells = [fmt(rates[p].get(n)) for p in peers]
        for a, b, _ in ratios:
            top, bottom = rates[a].get(n), rates[b].get(n)
            cells.append(f"{top / bottom:.2f}x" if top and bottom else "—")
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    lines += ["", f"Native envs at {native_envs_n:,} copies, eager (same measurement):", "",
              "| env | steps/s |", "| --- | ---: |"]
    lines += [f"| {env_id} | {rate:,.0f} |" for env_id, rate in native_envs.items()]
    lines += ["", *[f"- {note}" for note in notes], ""]
    path.write_text("\n".join(lines))


def write_plot(path: Path, rates: dict[str, dict[int, float]], device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for peer, marker in zip(PEERS, "oPsXD^v"):
        if rates.get(peer):
            sizes = sorted(rates[peer])
            ax.plot(sizes, [rates[peer][n] for n in sizes], marker=marker, label=peer)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("env copies stepped per call")
    ax.set_ylabel("transitions per second")
    ax.set_title(f"CartPole-v1 throughput, random actions ({device})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4**k for k in range(9)], help="copy counts")
    parser.add_argument("--gymnasium-max", type=int, default=256, help="largest SyncVectorEnv to run")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per peer and size")
    parser.add_argument("--gymnax-python", default=None, help="interpreter with jax and gymnax installed")
    # One thread, as thorndike's RunOptions default: on a busy machine torch's intra-op threads can stall the small
    # ops of a step for milliseconds waiting on each other (measured: 60x slower at 4,096 copies under load 4).
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="device of the thorndike native contenders (and gymnax)")
    parser.add_argument("--rollout-steps", type=int, default=16, help="steps per compiled rollout (0: not run)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for env_throughput.{md,json,png}")
    args = parser.parse_args()
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.exit(2, "no CUDA device: run with --device cpu\n")
    torch.set_num_threads(args.threads)
    sizes = sorted(args.sizes)
    load_before = os.getloadavg()
    rates: dict[str, dict[int, float]] = {peer: {} for peer in PEERS}
    notes = []

    python, reason = gymnax_python(args.gymnax_python)
    if python is None:
        print(reason, flush=True)
        notes.append(reason)
    else:
        transitions = int(4096 * 1000 * args.seconds)  # per timed call: 1000 steps of 4,096 copies at 1 s
        rates[GYMNAX], versions, compile_s, how = gymnax_rates(python, sizes, transitions, args.device)
        compile_range = f"{min(compile_s.values()):.1f}-{max(compile_s.values()):.1f}"
        settings = ", ".join(f"{n:,}: {how[n]}" for n in sizes)
        notes.append(f"gymnax: {versions['gymnax']} on jax {versions['jax']} ({versions['devices']}); compile time "
                     f"{compile_range} s per size, not counted; on a CPU the better of XLA on all cores and XLA "
                     f"pinned to one core (as torch's one thread) per size ({settings})")
        rates[GYMNAX_STORING], *_ = gymnax_rates(python, sizes, transitions, args.device, mode="store")
        for peer in (GYMNAX, GYMNAX_STORING):
            for n in sizes:
                print(f"{peer:38s} {n:>6,} copies {rates[peer][n]:>14,.0f} steps/s", flush=True)
    rollout_compile_s: dict[int, float] = {}
    for n in sizes if args.rollout_steps > 0 else []:
        rates[COMPILED][n], rollout_compile_s[n] = compiled_rate(n, args.seconds, args.rollout_steps, args.device)
        print(f"{COMPILED:38s} {n:>6,} copies {rates[COMPILED][n]:>14,.0f} steps/s "
              f"(compiled in {rollout_compile_s[n]:.1f} s)", flush=True)
    for peer, rate in ((NATIVE, lambda n, s: native_rate(n, s, device=args.device)), (NUMPY, numpy_rate),
                       (SYNC, sync_rate), (ADAPTER, adapter_rate)):
        for n in sizes:
            if peer in (SYNC, ADAPTER) and n > args.gymnasium_max:
                continue
            rates[peer][n] = rate(n, args.seconds)
            print(f"{peer:38s} {n:>6,} copies {rates[peer][n]:>14,.0f} steps/s", flush=True)
    native_envs_n = 4096
    native_envs = {env.env_id: native_rate(native_envs_n, args.seconds, env.env_id, args.device) for env in ENVS}
    if rollout_compile_s:
        notes.append(f"compiled rollouts: {args.rollout_steps} steps per call of one torch.compile'd program "
                     f"(BatchedRollout); compile time {min(rollout_compile_s.values()):.1f}-"
                     f"{max(rollout_compile_s.values()):.1f} s per size, not counted; its random numbers (the env's "
                     "reset bits, one uniform per action) are drawn before each call, inside the timed loop")

    load_after = os.getloadavg()
    notes += [
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} (CPU threads: {torch.get_num_threads()}), gymnasium {gym.__version__}, "
        f"numpy {np.__version__}, Python {platform.python_version()}",
        f"load average (1 min) {load_before[0]:.2f} before and {load_after[0]:.2f} after the run: the machine is "
        "shared, so figures can move by tens of percent between runs",
        "SyncVectorEnv uses same-step autoreset (thorndike's convention); CartPoleVectorEnv and gymnax use their "
        "own autoreset. Actions: torch.randint per step (native, GymnasiumVecEnv), one uniform per action drawn "
        "before each call (compiled rollouts), action_space.sample() "
        "(SyncVectorEnv), NumPy integers (CartPoleVectorEnv), jax.random inside the compiled loop (gymnax)",
        "the native env does more per step than CartPoleVectorEnv: it draws reset states for every copy on every "
        "step (a fixed-shape draw, so the step never waits on the data) and returns final observations and episode "
        "statistics; CartPoleVectorEnv resets on the next step, drawing only for the copies that ended, and returns "
        "neither. thorndike's GymnasiumVecEnv takes one env object per copy, so it cannot use CartPoleVectorEnv",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    device_name = (torch.cuda.get_device_name() if torch.device(args.device).type == "cuda"
                   else f"CPU, {torch.get_num_threads()} torch thread(s)")
    write_table(args.out / "env_throughput.md", sizes, rates, notes, native_envs, native_envs_n, device_name)
    write_plot(args.out / "env_throughput.png", rates, device_name)
    (args.out / "env_throughput.json").write_text(json.dumps(
        {"command": " ".join(sys.argv), "device": args.device, "device_name": device_name,
         "rates": {peer: {str(n): r for n, r in by_n.items()} for peer, by_n in rates.items() if by_n},
         "native_envs": native_envs, "native_envs_n": native_envs_n, "notes": notes}, indent=1))
    print((args.out / "env_throughput.md").read_text())


if __name__ == "__main__":
    main()
