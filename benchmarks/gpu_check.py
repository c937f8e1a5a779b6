"""Everything issue #20 measures on a GPU, in one command: env throughput, PPO's time to solve, and the versions.

On a machine with a CUDA GPU (the project's venv with a CUDA torch; for the gymnax peer an interpreter with a CUDA
jax and gymnax, e.g. ``/tmp/gymnax-venv/bin/python``):

    .venv/bin/python benchmarks/gpu_check.py --gymnax-python /tmp/gymnax-venv/bin/python

To test the script on a CPU (everything shrunk, under two minutes):

    .venv/bin/python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gpu-check

What it measures, each part in its own section of the report:

(a) Env throughput, thorndike's native CartPole against gymnax (jit + vmap + scan) at 4,096, 65,536, 1,048,576 and
    4,194,304 copies, by running ``benchmarks/env_throughput.py --device <device> --sizes ... --out <tmp>`` as a
    subprocess and folding its rates into this report, a native / gymnax ratio for each of thorndike's columns
    (eager, and compiled rollouts where env_throughput.py measures them; ``--quick`` leaves the compiled ones out,
    each size compiles for seconds). The issue's goal, judged on the better native column: native >= gymnax at
    65,536 and 1,048,576 copies. Where env_throughput.py has no ``--device`` option, this part says so and the rest
    goes on.
(b) PPO's time to solve, 3 seeds: CartPole-v1 to an evaluation mean >= 475 and Pendulum-v1 to >= -200, each with
    the CPU configuration on the CPU (CartPole: ``ppo_cartpole_fast``; Pendulum: the tuned entry of ``ppo.yaml``,
    first seed only, about a minute) and the GPU configuration (``ppo_cartpole_gpu``, ``ppo_pendulum_gpu``) on
    ``--device``, all on the native env. Evaluations: every 8,192 steps for the CPU configs, every 2 (CartPole) or 4
    (Pendulum) iterations for the GPU configs (an evaluation plays up to 500 steps one launch after another). Time
    to solve is the run's own clock (``time/elapsed_s`` of the solving evaluation's row in ``progress.csv``),
    evaluation included; building the agent is not timed, and one short untimed run per device and config comes
    first (CUDA context, cuBLAS handles, the kernels' first launches). Without ``--quick`` the GPU configs also
    run with the run option ``compile=True`` (each rollout one compiled program, CUDA graphs; the loss compiled;
    compiling counted in the time). Goal: the GPU config on the GPU solves faster than the CPU config on the CPU.
(c) Versions: Python, torch, CUDA, cuDNN, the GPU's name and memory, and jax's devices as ``--gymnax-python`` sees
    them.
(d) The captured training step (``thorndike.core.capture``) against eager on ``--device``, by
    ``benchmarks/capture_ab.py``'s rows, A/B in this process: one PPO iteration (``ppo_cartpole_fast``: eager, the
    run option ``compile`` with the step not captured, captured), one DQN gradient step (``dqn_cartpole_fast``) and
    one SAC gradient step (Pendulum-v1), with each variant's ratio to eager; compiling not timed. ``--quick`` leaves
    this part out unless ``--parts`` names it (each captured program compiles for 20-40 s on a small CPU).

Writes ``<out>/gpu_check.md`` and ``.json`` (``gpu_check_cpu.*`` with ``--device cpu``, so a test on the CPU never
overwrites a GPU report; ``--quick`` adds ``_quick``; ``--parts throughput``, ``--parts ppo`` or ``--parts capture``
alone adds the part's name, so the parts can run as separate commands where a machine's time per command is
limited). Without CUDA, ``--device cuda`` (the default) stops at once with exit status 2 and says to use
``--device cpu``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"
THROUGHPUT_SCRIPT = Path(__file__).resolve().parent / "env_throughput.py"
SIZES = (4_096, 65_536, 1_048_576, 4_194_304)
QUICK_SIZES = (256, 4_096)
NATIVE_PEER, GYMNAX_PEER = "thorndike native", "gymnax (jax"  # not the "gymnax storing transitions" column


# ---- (a) env throughput -----------------------------------------------------------------------------------------


def throughput_options() -> str:
    """env_throughput.py's ``--help`` text (its options: ``--device`` is being added while this script is written)."""
    out = subprocess.run([sys.executable, str(THROUGHPUT_SCRIPT), "--help"], capture_output=True, text=True)
    return out.stdout


def parse_throughput_table(text: str) -> dict[str, dict[int, float]]:
    """The first Markdown table of env_throughput.md whose first column is ``copies``: steps/s per peer (column)
    and copy count; ratio columns (``a / b``) and empty cells (``—``) are left out."""
    rates: dict[str, dict[int, float]] = {}
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            if header is not None and rates:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            if cells[0] == "copies":
                header = cells
            continue
        if set(cells[0]) <= set("-: "):
            continue  # the alignment row
        copies = int(cells[0].replace(",", ""))
        for name, cell in zip(header[1:], cells[1:], strict=False):
            if " / " in name or not re.fullmatch(r"[\d,.]+", cell):
                continue
            rates.setdefault(name, {})[copies] = float(cell.replace(",", ""))
    return rates


def pick_peer(rates: dict[str, dict[int, float]], word: str) -> str | None:
    """The column of ``rates`` whose name starts with ``word`` (case-insensitive): env_throughput.py names its
    peers at length, e.g. "thorndike native (torch eager)"."""
    return next((name for name in rates if name.lower().startswith(word.lower())), None)


def measure_throughput(device: str, sizes: list[int], seconds: float, gymnax_python: str | None,
                       timeout_s: float, quick: bool = False) -> dict[str, Any]:
    """Run env_throughput.py for ``sizes`` on ``device`` and read its rates back (its JSON where it writes one,
    else its Markdown table); what went wrong, as a note. ``quick`` leaves out its compiled rollouts (each size
    compiles for seconds)."""
    result: dict[str, Any] = {"sizes": sizes, "rates": {}, "notes": []}
    options = throughput_options()
    if "--device" not in options:
        if device != "cpu":
            note = (f"env throughput NOT measured on {device}: benchmarks/env_throughput.py has no --device option "
                    "yet (issue #20 adds it); run this script again once it has")
            print(note, flush=True)
            result["notes"].append(note)
            return result
        result["notes"].append("env_throughput.py has no --device option: measured on the CPU, its only device")
    with tempfile.TemporaryDirectory(prefix="gpu-check-throughput-") as tmp:
        command = [sys.executable, str(THROUGHPUT_SCRIPT), "--sizes", *map(str, sizes), "--seconds", str(seconds),
                   "--out", tmp]
        if "--gymnasium-max" in options:
            command += ["--gymnasium-max", "0"]  # one Python object per copy: no point at these sizes
        if "--device" in options:
            command += ["--device", device]
        if quick and "--rollout-steps" in options:
            command += ["--rollout-steps", "0"]
        if gymnax_python:
            command += ["--gymnax-python", gymnax_python]
        result["command"] = " ".join(command)
        print("running:", result["command"], flush=True)
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            result["notes"].append(f"env_throughput.py did not finish within {timeout_s:.0f} s")
            return result
        if out.returncode != 0:
            tail = (out.stderr.strip() or out.stdout.strip())[-1500:]
            result["notes"].append(f"env_throughput.py failed (exit {out.returncode}): {tail}")
            return result
        table = Path(tmp) / "env_throughput.md"
        data = Path(tmp) / "env_throughput.json"
        result["markdown"] = table.read_text() if table.is_file() else ""
        result["rates"] = parse_throughput_table(result["markdown"])
        if data.is_file():
            result["json"] = json.loads(data.read_text())
            rates = result["json"].get("rates")
            if isinstance(rates, dict) and rates:
                result["rates"] = {peer: {int(n): float(r) for n, r in by_size.items() if r is not None}
                                   for peer, by_size in rates.items() if by_size}
        # Its own notes (versions, gymnax's device, load) are the lines starting with "- " after the tables.
        result["notes"] += [line[2:] for line in result["markdown"].splitlines() if line.startswith("- ")]
    return result


def throughput_section(result: dict[str, Any], device: str) -> list[str]:
    rates = result["rates"]
    # thorndike's columns (eager, and compiled rollouts where env_throughput.py measures them), then gymnax
    natives = [name for name in rates if name.lower().startswith(NATIVE_PEER)]
    gymnax = pick_peer(rates, GYMNAX_PEER)
    lines = ["## (a) Env throughput: CartPole-v1, random actions, steps/s of all copies", ""]
    if not natives:
        return lines + ["Not measured (see the notes below).", "", *[f"- {n}" for n in result["notes"]], ""]
    others = [name for name in rates if name not in natives and name != gymnax]
    peers = natives + ([gymnax] if gymnax else []) + others
    ratio_names = [f"{name.removeprefix(NATIVE_PEER).strip() or 'native'} / gymnax" for name in natives]
    lines += [f"thorndike on {device}; the peers as env_throughput.py ran them (see its notes).", "",
              "| copies | " + " | ".join(peers + ratio_names) + " |",
              "| ---: | " + " | ".join("---:" for _ in peers + ratio_names) + " |"]
    for n in result["sizes"]:
        cells = [f"{rates[p][n]:,.0f}" if n in rates[p] else "—" for p in peers]
        for native in natives:
            ratio = rates[native][n] / rates[gymnax][n] if gymnax and n in rates[native] and rates[gymnax].get(n) \
                else None
            cells.append("—" if ratio is None else f"{ratio:.3f}")
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    if gymnax:
        for n in (65_536, 1_048_576):
            measured = [(rates[native][n], native) for native in natives if n in rates[native]]
            if measured and n in rates[gymnax]:
                best, name = max(measured)
                met = best >= rates[gymnax][n]
                lines.append(f"\nGoal (native >= gymnax at {n:,} copies): {'met' if met else 'NOT met'} (best native "
                             f"column: {name}, {best / rates[gymnax][n]:.3f} of gymnax).")
    else:
        lines.append("\ngymnax not measured (see the notes): no ratio.")
    lines += ["", "Notes of env_throughput.py and of this part:", "", *[f"- {n}" for n in result["notes"]], ""]
    return lines


# ---- (b) PPO time to solve -----------------------------------------------------------------------------------------


def ppo_rows(device: str, quick: bool) -> list[dict[str, Any]]:
    """The runs of part (b): for each task the CPU config on the CPU and the GPU config on ``device``. ``quick``
    shrinks them to a few iterations (the GPU configs with 256 copies), which tests the script, not the configs."""
    rows = [
        dict(task="CartPole-v1", label="CPU fast config on cpu", device="cpu", config="ppo_cartpole_fast",
             fields={}, target=475.0, budget=100_000, eval_every=8_192),
        dict(task="CartPole-v1", label=f"GPU config on {device}", device=device, config="ppo_cartpole_gpu",
             fields={}, target=475.0, budget=2_000_000, eval_every=65_536),
        # Pendulum has no CPU fast config; its tuned entry (4 copies x 1,024 steps, 10 epochs of 64) takes about a
        # second per 4,096 steps on one core, so it runs on the first seed only.
        dict(task="Pendulum-v1", label="CPU tuned config (ppo.yaml) on cpu", device="cpu", config=None,
             fields={}, target=-200.0, budget=300_000, eval_every=8_192, first_seed_only=True),
        dict(task="Pendulum-v1", label=f"GPU config on {device}", device=device, config="ppo_pendulum_gpu",
             fields={}, target=-200.0, budget=4_000_000, eval_every=262_144),
    ]
    if not quick:  # the captured collection (run option compile=True: each rollout one program, CUDA graphs)
        rows += [dict(row, label=f"{row['label']}, compile=True (compiling included)",
                      fields={**row["fields"], "compile": True}) for row in rows if row["device"] != "cpu"]
    if quick:
        for row in rows:
            gpu = row["config"] is not None and row["config"].endswith("_gpu")
            row["fields"] = {"n_envs": 256, "minibatch_size": 2048} if gpu else {}
            per_iteration = 256 * (8 if row["task"] == "CartPole-v1" else 64) if gpu else None
            row["budget"] = 2 * per_iteration if gpu else (20_000 if row["task"] == "CartPole-v1" else 4_096)
            row["eval_every"] = per_iteration if gpu else 4_096
    return rows


def build_agent(row: dict[str, Any], seed: int, run_root: str) -> Any:
    """A quiet PPO agent for one row of :func:`ppo_rows` (``target`` None: no early stop)."""
    import thorndike as th

    return th.make("ppo", env=row["task"], seed=seed, config=row["config"], backend="torch", device=row["device"],
                   eval_every=row["eval_every"], eval_episodes=16, stop_return=row["target"], progress=False,
                   tensorboard=False, pictures=False, run_root=run_root, **row["fields"])


def time_to_solve(row: dict[str, Any], seed: int, run_root: str) -> dict[str, Any]:
    """One run until the first evaluation at or above the target (or the budget): the run's clock at that row."""
    from thorndike.core.logger import read_progress

    agent = build_agent(row, seed, run_root)
    start = time.perf_counter()
    agent.learn(row["budget"])
    learn_call_s = time.perf_counter() - start
    progress = read_progress(agent.run_dir)
    curve = [(int(s), m) for s, m in zip(progress["step"], progress["eval_mean"], strict=True) if not math.isnan(m)]
    solved_at = next((s for s, m in curve if m >= row["target"]), None)
    return {"task": row["task"], "label": row["label"], "device": row["device"], "seed": seed,
            "solved": solved_at is not None, "solved_at_step": solved_at,
            "time_to_solve_s": round(float(progress["time/elapsed_s"][-1]), 3), "steps_run": agent.global_step,
            "iterations": len(progress["step"]), "learn_call_s": round(learn_call_s, 3),
            "eval_curve": [[s, round(m, 1)] for s, m in curve]}


def measure_ppo(device: str, seeds: list[int], quick: bool, tasks: list[str]) -> list[dict[str, Any]]:
    rows = [row for row in ppo_rows(device, quick) if row["task"] in tasks]
    runs = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-ppo-") as run_root:
        for row in rows:  # untimed warm-up, one iteration and an evaluation: CUDA context, first launches, allocator
            agent = build_agent(dict(row, eval_every=1, target=None), 123, run_root)
            agent.learn(agent.config.n_envs * agent.config.n_steps)
        for seed in seeds:
            for row in rows:
                if row.get("first_seed_only") and seed != seeds[0]:
                    continue
                run = time_to_solve(row, seed, run_root)
                runs.append(run)
                print(json.dumps({k: v for k, v in run.items() if k != "eval_curve"}), flush=True)
    return runs


def median(values: list[float]) -> float | None:
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def ppo_section(runs: list[dict[str, Any]], device: str, quick: bool) -> list[str]:
    lines = ["## (b) PPO: time to solve on the native env", "",
             "Seconds from the start of training to the first evaluation (16 deterministic episodes) at or above the "
             "target, evaluation included (the run's own clock); a run that did not solve counts with its full time. "
             "Medians over the seeds; per seed: time (step of the solving evaluation).", "",
             "| task | configuration | time to solve (s) | steps to solve | solved | iterations | per seed |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["task"], run["label"]), []).append(run)
    medians: dict[tuple[str, str], float] = {}
    for (task, label), group in groups.items():
        t = median([r["time_to_solve_s"] for r in group])
        medians[(task, label)] = t
        steps = median([r["solved_at_step"] if r["solved"] else r["steps_run"] for r in group])
        per_seed = ", ".join(f"{r['time_to_solve_s']:.2f} ({r['solved_at_step']:,})" if r["solved"]
                             else f"{r['time_to_solve_s']:.2f} (—)" for r in group)
        lines.append(f"| {task} | {label} | {t:.2f} | {steps:,.0f} | {sum(r['solved'] for r in group)}/{len(group)} "
                     f"| {median([r['iterations'] for r in group]):.0f} | {per_seed} |")
    lines.append("")
    for task in dict.fromkeys(r["task"] for r in runs):
        cpu = next((v for (t, label), v in medians.items() if t == task and label.startswith("CPU")), None)
        for label in [lab for (t, lab) in medians if t == task and lab.startswith(f"GPU config on {device}")]:
            gpu, gpu_runs = medians[(task, label)], groups[(task, label)]
            if not cpu:
                continue
            # a GPU config that did not solve every seed has not met the goal, however little time it took
            verdict = ("not judged (--quick)" if quick else "not judged (the GPU config on the CPU: a check that it "
                       "learns)" if device == "cpu" else "met" if gpu < cpu and all(r["solved"] for r in gpu_runs)
                       else "NOT met")
            lines.append(f"- {task}: {label} / CPU config on cpu = {gpu / cpu:.3f} (goal: < 1 with every seed "
                         f"solved: {verdict})")
    if quick:
        lines.append("- --quick: a few iterations with 256 copies for the GPU configs; this tests the script, not "
                     "the configurations")
    return lines + [""]


# ---- (c) versions --------------------------------------------------------------------------------------------------


def versions(device: str, gymnax_python: str | None) -> dict[str, Any]:
    import gymnasium

    import thorndike

    info: dict[str, Any] = {
        "date": str(datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
        "torch": torch.__version__, "torch_cuda": torch.version.cuda, "thorndike": thorndike.__version__,
        "gymnasium": gymnasium.__version__, "device": device,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    gpu_count=torch.cuda.device_count(), cudnn=torch.backends.cudnn.version())
    if gymnax_python:
        probe = subprocess.run(
            [gymnax_python, "-c", "import jax, gymnax, json; from importlib.metadata import version; "
             "print(json.dumps({'jax': jax.__version__, 'gymnax': version('gymnax'), "
             "'jax_devices': str(jax.devices())}))"], capture_output=True, text=True)
        if probe.returncode == 0:
            info.update(json.loads(probe.stdout.strip().splitlines()[-1]))
        else:
            tail = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"exit {probe.returncode}"
            info["jax_devices"] = f"--gymnax-python {gymnax_python} cannot import jax and gymnax: {tail}"
    else:
        info["jax_devices"] = "no --gymnax-python given"
    return info


def versions_section(info: dict[str, Any]) -> list[str]:
    return ["## (c) Versions", "", *[f"- {key}: {value}" for key, value in info.items()], ""]


# ---- (d) the captured step ---------------------------------------------------------------------------------------


def measure_capture(device: str, repeats: int) -> list[dict[str, Any]]:
    """benchmarks/capture_ab.py's rows on ``device``: seconds per call of each variant and its ratio to eager."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import capture_ab

    with tempfile.TemporaryDirectory(prefix="gpu-check-capture-") as run_root:
        return capture_ab.measure(device, repeats, run_root)


def capture_section(rows: list[dict[str, Any]] | None, device: str) -> list[str]:
    lines = ["## (d) The captured training step against eager", ""]
    if rows is None:
        return lines + ["Not measured with --quick (each captured program compiles for 20-40 s on a small CPU); "
                        "run with --parts capture.", ""]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import capture_ab

    return lines + [f"On {device}; median of the interleaved repeats, compiling not timed.", "",
                    *capture_ab.table(rows), ""]


# ---- main ----------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="device of thorndike's GPU runs")
    parser.add_argument("--quick", action="store_true", help="shrink everything (a test of the script)")
    parser.add_argument("--gymnax-python", default=None, help="interpreter with jax (CUDA on a GPU) and gymnax")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="PPO seeds (default 0 1 2)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="copy counts of the throughput part")
    parser.add_argument("--parts", nargs="+", choices=("throughput", "ppo", "capture", "versions"), default=None,
                        help="which parts to run (default: all; with --quick all but capture)")
    parser.add_argument("--capture-repeats", type=int, default=5, help="interleaved repeats of part (d)")
    parser.add_argument("--tasks", nargs="+", choices=("CartPole-v1", "Pendulum-v1"),
                        default=["CartPole-v1", "Pendulum-v1"], help="PPO tasks (default: both)")
    parser.add_argument("--throughput-timeout", type=float, default=1800, help="seconds env_throughput.py may run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for gpu_check.{md,json}")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu to test the script", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    if args.parts is None:
        args.parts = ["throughput", "ppo", "versions"] + ([] if args.quick else ["capture"])
    seeds = args.seeds[:1] if args.quick else args.seeds
    sizes = args.sizes or list(QUICK_SIZES if args.quick else SIZES)
    command = " ".join(["python", *(os.path.relpath(a) if a == sys.argv[0] else a for a in sys.argv)]
                       ) if argv is None else " ".join(["python benchmarks/gpu_check.py", *argv])
    report: dict[str, Any] = {"command": command, "device": args.device, "quick": args.quick}
    lines = [f"# GPU check ({args.device}{', quick' if args.quick else ''})", "", "Command:", "", f"    {command}",
             ""]
    if "versions" in args.parts:
        report["versions"] = versions(args.device, args.gymnax_python)
    if "throughput" in args.parts:
        report["throughput"] = measure_throughput(args.device, sizes, 0.05 if args.quick else 1.0,
                                                  args.gymnax_python, args.throughput_timeout, args.quick)
        lines += throughput_section(report["throughput"], args.device)
    if "ppo" in args.parts:
        report["ppo"] = measure_ppo(args.device, seeds, args.quick, args.tasks)
        lines += ppo_section(report["ppo"], args.device, args.quick)
    if "capture" in args.parts:
        report["capture"] = measure_capture(args.device, args.capture_repeats)
    if "versions" in args.parts:
        lines += versions_section(report["versions"])
    if "capture" in args.parts or args.quick:
        lines += capture_section(report.get("capture"), args.device)
    stem = "gpu_check" + ("_cpu" if args.device == "cpu" else "") + ("_quick" if args.quick else "")
    measured = [part for part in ("throughput", "ppo", "capture") if part in args.parts]
    if len(measured) == 1:  # a part run on its own (e.g. to fit a time limit) does not overwrite the full report
        stem += f"_{measured[0]}"
    args.out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    (args.out / f"{stem}.md").write_text(text)
    report.get("throughput", {}).pop("markdown", None)  # its rates are in the JSON; the table is in the .md
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
