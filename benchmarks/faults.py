"""The fault-injection campaign of issue #13: kill runs at random moments, damage their files, feed bad values, break
their envs and their file system, and classify what thorndike does in each case.

    PYTHONPATH=. .venv/bin/python benchmarks/faults.py [--quick] [--seed N] [--algos ppo q_learning ...]

For one algorithm of each family present (policy gradient: ppo; tabular: q_learning, sarsa; search: cem, param_cem),
on the tiny runs of ``thorndike.registry.EXAMPLES``:

- **SIGKILL** at 20 moments per algorithm drawn from a seeded RNG, a third each: mid-training (right after a row of
  progress.csv, or at a random time from outside), during a checkpoint write (temporary file half written, written
  but not renamed, while old checkpoints are pruned, while writing ``final.pt``), and during a resume (while
  progress.csv is rewritten, after some rows, in its first checkpoint write, at a random time; once or twice in a
  row). The run is then resumed with ``thorndike train --resume`` and compared with an uninterrupted run of the same
  seed: every component (weights, optimiser, tables), every random state and the counters of ``final.pt`` bit for
  bit, and progress.csv row for row (wall-clock columns aside).
- **Damaged and foreign files**: the newest checkpoint truncated, empty, random, one byte flipped, a valid frame
  around a wrong pickle or a state of nothing, a plain ``torch.save`` file, a stale temporary file, another
  algorithm's, env's, seed's or config's checkpoint; all checkpoints damaged; ``config.yaml`` missing, damaged or
  another run's; progress.csv with a half-written last row, a row cut inside its step, garbage, or gone; a damaged
  ``final.pt`` loaded directly and through the run folder.
- **Config fuzz**: wrong kinds for every field of the algorithm's Config and of the run options (inf, nan, negative
  and huge ints, bools for numbers, None, lists, strings), bad seeds (2**70, -1, True), envs (``os:getcwd``, unknown
  ids), env kwargs, wrappers, YAML files and step budgets, through the Python API and the command line.
- **Faulty envs**: NaN observation, reward or final observation, infinite reward, wrong observation shape, string
  observations, an exception inside ``step``, discrete states out of range (-1, n) or fractional.
- **File system**: run_root a file or read-only, a run folder that became read-only before a resume, a full disk
  (ENOSPC, simulated by a failing write) during a checkpoint, a progress.csv row, config.yaml or final.pt, and
  several launches of the same run at the same moment (same microsecond forced, and natural).

Each case runs in a child process forked from a server that has thorndike imported (so a case costs milliseconds,
not an interpreter start), with a memory limit (RLIMIT_AS) and a timeout. Kills mid-write are placed from inside
the child (its file writes are wrapped), since a 1 ms write cannot be hit reliably by polling from outside; the
"random time" moments are real SIGKILLs sent by this process.

Outcomes: ``ok`` (bit-identical resume; a clear error at construction naming the field; a damaged or foreign file
refused by name), ``lost rows`` (progress.csv misses rows of the uninterrupted run), ``not identical`` (the resumed
run differs, or the folder keeps debris), ``traceback`` (an error that is not one of thorndike's clear errors --
ConfigError, NonFiniteError, MissingDependencyError, CheckpointError, or a ValueError/TypeError/OSError raised by
thorndike naming what is wrong), ``silently accepted`` (a bad input taken without a word), ``hang`` (timeout).

Writes ``benchmarks/results/faults.md`` (the table and every case that is not ok) and ``faults.json`` (every case);
``--quick`` writes ``faults_quick.*``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import errno
import io
import json
import math
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
import typing
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the contract suite's comparison helpers live in tests/
    sys.path.insert(0, str(ROOT))

import thorndike as th  # noqa: E402
from tests.test_contract import QUIET, learning_rows, same_state  # noqa: E402
from thorndike.config import ConfigError, RunOptions  # noqa: E402
from thorndike.core.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, sign  # noqa: E402
from thorndike.core.diagnostics import NonFiniteError  # noqa: E402
from thorndike.envs import MissingDependencyError  # noqa: E402
from thorndike.registry import ALGORITHMS, EXAMPLES, get_algorithm  # noqa: E402

RESULTS = Path(__file__).parent / "results"
OUTCOMES = ("ok", "lost rows", "not identical", "traceback", "silently accepted", "hang")
FULL_ALGOS = ("ppo", "q_learning", "sarsa", "cem", "param_cem")
QUICK_ALGOS = ("ppo", "q_learning", "cem")

# Timeouts (seconds): a tiny example run takes well under a second; these leave room on a loaded 2-core machine.
RUN_TIMEOUT = 60.0
CASE_TIMEOUT = 8.0
MEMORY_HEADROOM = 3 << 30  # bytes of address space a child may add to what it starts with


@dataclasses.dataclass
class Case:
    """One fault and what came of it."""

    category: str
    algo: str
    case: str
    outcome: str
    detail: str
    seconds: float = 0.0


# ---- children ------------------------------------------------------------------------------------------------------
#
# Every case runs in a child forked from a forkserver that imported thorndike (and torch._dynamo, which the first Adam
# optimiser imports lazily, a second otherwise). A child reports over a pipe: ("start", i), ("note", i, text), ("done",
# i, result). A batch child runs many cases in a row; when one hangs or kills the child, the rest go on in a new one.

_CONTEXT: Any = None
_PRELOAD = ["__main__" if __name__ == "__main__" else __name__, "thorndike", "thorndike.cli", "torch._dynamo",
            *sorted({target.partition(":")[0] for target in ALGORITHMS.values()})]


def preload(*modules: str) -> None:
    """Have the fork server import ``modules`` too (before its first child), e.g. a test module's jobs."""
    _PRELOAD.extend(modules)


def context() -> Any:
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(_PRELOAD)
    return _CONTEXT


def _limit_memory(headroom: int) -> None:
    with open("/proc/self/status") as f:
        size_kb = next(int(line.split()[1]) for line in f if line.startswith("VmSize"))
    limit = size_kb * 1024 + headroom
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _child(conn: Any, job: Callable[[Any, Callable[[str], None]], dict], cases: list[Any], headroom: int) -> None:
    _limit_memory(headroom)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # jobs that judge warnings record them themselves
    for i, case in enumerate(cases):
        conn.send(("start", i))
        try:
            result = job(case, lambda text, i=i: conn.send(("note", i, text)))
        except BaseException as err:  # a job's own slip: report it rather than lose the child
            result = {"crash": error_info(err)}
        conn.send(("done", i, result))
    conn.close()


def run_batch(job: Callable, cases: list[Any], timeout: float = CASE_TIMEOUT, kill_on: str | None = None,
              kill_after: float = 0.0, headroom: int = MEMORY_HEADROOM) -> list[dict]:
    """Run ``job(case, note)`` for each case in children; one result per case: ``status`` is done (with the job's
    result), killed (SIGKILL: the job's own hook, or ours ``kill_after`` seconds after the note ``kill_on``), died
    (another signal or exit), or timeout."""
    ctx = context()
    results: list[dict] = []
    while len(results) < len(cases):
        pending = cases[len(results):]
        reader, writer = ctx.Pipe(duplex=False)
        process = ctx.Process(target=_child, args=(writer, job, pending, headroom), daemon=True)
        process.start()
        writer.close()
        notes: list[str] = []
        deadline, kill_at = time.monotonic() + timeout, None
        while len(results) < len(cases):
            now = time.monotonic()
            wake = min(deadline, kill_at) if kill_at is not None else deadline
            if not reader.poll(max(wake - now, 0)):
                if kill_at is not None and time.monotonic() >= kill_at:
                    os.kill(process.pid, signal.SIGKILL)
                    kill_at = None
                    continue  # the pipe's end follows
                os.kill(process.pid, signal.SIGKILL)
                results.append({"status": "timeout", "notes": notes})
                break
            try:
                message = reader.recv()
            except (EOFError, OSError):
                process.join(10)
                code = process.exitcode
                status = "killed" if code == -signal.SIGKILL else "died"
                results.append({"status": status, "exitcode": code, "notes": notes})
                break
            if message[0] == "start":
                notes, deadline, kill_at = [], time.monotonic() + timeout, None
            elif message[0] == "note":
                notes.append(message[2])
                if kill_on is not None and message[2] == kill_on:
                    kill_at = time.monotonic() + kill_after
            else:
                results.append({"status": "done", "notes": notes, **message[2]})
        reader.close()
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join()
    return results


def run_one(job: Callable, case: Any, timeout: float = RUN_TIMEOUT, **kwargs: Any) -> dict:
    return run_batch(job, [case], timeout=timeout, **kwargs)[0]


# ---- errors --------------------------------------------------------------------------------------------------------

CLEAR_TYPES = (ConfigError, NonFiniteError, MissingDependencyError, CheckpointError)


def error_info(err: BaseException) -> dict:
    """What the parent needs to judge an error: its type, message (with the notes thorndike adds), whether it is one
    of thorndike's clear errors, and where it was raised."""
    frames = traceback.extract_tb(err.__traceback__)
    origin = frames[-1].filename if frames else ""
    notes = "".join(f" | {note}" for note in getattr(err, "__notes__", []))
    # A ValueError, TypeError or OSError counts as clear only when the judge also finds the subject named in it
    # (a field, a file, the step and env copy), wherever it was raised.
    return {"type": type(err).__name__, "message": f"{err}{notes}"[:600],
            "clear": isinstance(err, CLEAR_TYPES + (ValueError, TypeError, OSError)),
            "origin": f"{Path(origin).name}:{frames[-1].lineno}" if frames else "?"}


def short(text: str, width: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def names(message: str, *subjects: str) -> bool:
    """Whether an error message names any of ``subjects`` (a field, its --flag, a file)."""
    low = message.lower()
    return any(s and s.lower() in low for s in subjects)


def error_text(result: dict) -> str:
    error = result.get("error") or result.get("crash") or {}
    return f"{error.get('type', '?')}: {error.get('message', '')}"


# ---- comparing a run with the uninterrupted one --------------------------------------------------------------------


def judge_run(run_dir: Path, reference: Path) -> tuple[str, str]:
    """``ok`` when the run ends bit for bit like ``reference`` (components, random states and counters of
    ``final.pt``; every learning column of progress.csv), else what differs."""
    try:
        rows = learning_rows(run_dir)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        return "lost rows", f"progress.csv unreadable after the resume: {short(str(err), 80)}"
    expected = learning_rows(reference)
    steps = [row.get("step") for row in rows]
    missing = [row["step"] for row in expected if row["step"] not in steps]
    if missing:
        return "lost rows", f"{len(missing)} of {len(expected)} rows missing (first at step {missing[0]})"
    if rows != expected:
        extra = len(rows) - len(expected)
        bad = next(i for i, (a, b) in enumerate(zip(rows, expected, strict=False)) if a != b) if extra == 0 else None
        what = f"{extra} extra row(s)" if extra else f"row {bad} (step {expected[bad]['step']}) differs"
        return "not identical", f"progress.csv: {what}"
    if not (run_dir / "final.pt").is_file():
        return "not identical", "no final.pt"
    ours, theirs = load_checkpoint(run_dir / "final.pt"), load_checkpoint(reference / "final.pt")
    for part in ("components", "rng", "counters"):
        if not same_state(ours[part], theirs[part]):
            return "not identical", f"final.pt: {part} differ"
    # A SIGKILLed write cannot remove its own temporary file; the run ignores it. Said, not counted against it
    # (a full disk, where the writer lives on to clean up, is judged on it separately).
    debris = [p.name for p in run_dir.rglob("*.tmp-*")]
    return "ok", f"bit-identical ({len(rows)} rows)" + (f"; stale temporary file {debris[0]} left" if debris else "")


def state_is_finite(agent: Any) -> bool:
    def finite(value: Any) -> bool:
        if isinstance(value, torch.Tensor):
            return not value.is_floating_point() or bool(torch.isfinite(value).all())
        if isinstance(value, dict):
            return all(finite(v) for v in value.values())
        if isinstance(value, list | tuple):
            return all(finite(v) for v in value)
        if isinstance(value, float):
            return math.isfinite(value)
        return True

    return finite(agent.state_dict()["components"])


# ---- the runs every case is compared with --------------------------------------------------------------------------


@dataclasses.dataclass
class Reference:
    """An uninterrupted run of an algorithm's example (twice its steps, a checkpoint every quarter of them, all
    kept): what a killed or damaged run must end exactly like."""

    algo: str
    env: str
    fields: dict[str, Any]
    steps: int
    checkpoint_every: int
    run_dir: Path
    rows: list[dict[str, str]]
    checkpoint_steps: list[int]
    learn_seconds: float

    def options(self, run_root: Path, keep: int = 2) -> dict[str, Any]:
        # Killed runs prune old checkpoints (keep 2); the learning does not depend on it.
        return dict(QUIET, run_root=str(run_root), checkpoint_every=self.checkpoint_every, keep_checkpoints=keep)

    def make_kwargs(self, run_root: Path, seed: int = 0, keep: int = 2) -> dict[str, Any]:
        return dict(env=self.env, seed=seed, **self.fields, **self.options(run_root, keep))

    def row_steps(self) -> list[int]:
        return [int(row["step"]) for row in self.rows]


def make_reference(algo: str, root: Path) -> Reference:
    ex = EXAMPLES[algo]
    steps, every = 2 * ex.steps, ex.steps // 4
    agent = th.make(algo, env=ex.env, seed=0, **ex.fields, **QUIET, run_root=str(root / "reference" / algo),
                    checkpoint_every=every, keep_checkpoints=0)
    start = time.perf_counter()
    agent.learn(steps)
    seconds = time.perf_counter() - start
    checkpoints = [load_checkpoint(p)["counters"]["global_step"]
                   for p in list_checkpoints(agent.run_dir / "checkpoints")]
    return Reference(algo, ex.env, dict(ex.fields), steps, every, agent.run_dir, learning_rows(agent.run_dir),
                     checkpoints, seconds)


# ---- SIGKILL: hooks installed inside the child ---------------------------------------------------------------------


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class _FailingFile:
    """A file whose big write stops part-way: the process is SIGKILLed there (``how="kill"``) or the write fails with
    ENOSPC, as on a full disk (``how="enospc"``)."""

    def __init__(self, f: Any, fraction: float, how: str, min_size: int = 64) -> None:
        self.f, self.fraction, self.how, self.min_size = f, fraction, how, min_size

    def write(self, data: Any) -> int:
        if len(data) < self.min_size:
            return self.f.write(data)
        self.f.write(data[: int(len(data) * self.fraction)])
        self.f.flush()
        if self.how == "kill":
            os.fsync(self.f.fileno())
            _die()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)

    def __enter__(self) -> _FailingFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.f.close()


_CHECKPOINT = re.compile(r"step-\d+\.pt")


def install_hook(hook: dict[str, Any]) -> None:
    """Arrange, inside this child, for a SIGKILL (or an ENOSPC) at the moment ``hook`` names.

    kinds: ``row`` (right after the k-th row this process writes to progress.csv), ``ckpt-rename`` (the k-th
    checkpoint's temporary file written, not renamed), ``ckpt-half`` (the k-th checkpoint's temporary file written up
    to ``fraction``), ``prune`` (right after the k-th old checkpoint is deleted), ``final-write`` (final.pt's
    temporary file written, not renamed), ``csv-rewrite`` (a resume's cut progress.csv written, not renamed),
    ``timed`` (nothing here: the parent sends the SIGKILL), and the full-disk ones ``enospc-ckpt``, ``enospc-row``,
    ``enospc-config``, ``enospc-final``.
    """
    import pathlib

    import thorndike.core.checkpoint as checkpoint_module
    import thorndike.core.logger as logger_module

    kind, k, fraction = hook["kind"], hook.get("k", 1), hook.get("fraction", 0.5)
    counts: Counter = Counter()
    real_replace, real_open, real_unlink, real_log = os.replace, open, pathlib.Path.unlink, logger_module.Logger.log

    if kind == "row":
        def log(self: Any, step: int, row: dict) -> None:
            real_log(self, step, row)
            counts["rows"] += 1
            if counts["rows"] == k:
                _die()
        logger_module.Logger.log = log
    elif kind in ("ckpt-rename", "final-write", "csv-rewrite"):
        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            target = Path(os.fspath(dst))
            if kind == "ckpt-rename" and target.parent.name == "checkpoints":
                counts["checkpoints"] += 1
                if counts["checkpoints"] == k:
                    _die()
            if (kind == "final-write" and target.name == "final.pt") or (
                    kind == "csv-rewrite" and target.name == "progress.csv"):
                _die()
            real_replace(src, dst, *args, **kwargs)
        os.replace = replace
    elif kind == "prune":
        def unlink(self: pathlib.Path, missing_ok: bool = False) -> None:
            real_unlink(self, missing_ok=missing_ok)
            if self.parent.name == "checkpoints" and _CHECKPOINT.fullmatch(self.name):
                counts["pruned"] += 1
                if counts["pruned"] == k:
                    _die()
        pathlib.Path.unlink = unlink
    elif kind in ("ckpt-half", "enospc-ckpt", "enospc-final", "enospc-config"):
        how = "kill" if kind == "ckpt-half" else "enospc"
        prefix = {"ckpt-half": ".step-", "enospc-ckpt": ".step-", "enospc-final": ".final.pt.tmp",
                  "enospc-config": ".config.yaml.tmp"}[kind]

        def checkpoint_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            f = real_open(file, mode, *args, **kwargs)
            if "w" in mode and Path(os.fspath(file)).name.startswith(prefix):
                counts["opened"] += 1
                if counts["opened"] == (k if prefix == ".step-" else 1):
                    return _FailingFile(f, fraction, how, min_size=64 if kind != "enospc-config" else 1)
            return f
        checkpoint_module.open = checkpoint_open
    elif kind == "enospc-row":
        def logger_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            f = real_open(file, mode, *args, **kwargs)
            if mode == "a":
                counts["rows"] += 1
                if counts["rows"] == k:
                    return _FailingFile(f, fraction, "enospc", min_size=1)
            return f
        logger_module.open = logger_open
    elif kind != "timed":
        raise ValueError(f"unknown hook {kind!r}")


def train_job(job: dict, note: Callable[[str], None]) -> dict:
    """In a child: start (or resume) a run with a hook installed, and learn to its budget."""
    install_hook(job["hook"])
    try:
        if "resume" in job:
            agent = th.resume(job["resume"], progress=False)
            note("go")
            agent.learn(agent.total_steps)
        else:
            agent = th.make(job["algo"], **job["kwargs"])
            note("go")
            agent.learn(job["steps"])
    except Exception as err:
        return {"error": error_info(err)}
    return {"finished": True}


def drop_dac_override() -> None:
    """Let file permissions bind this process even as root: drop CAP_DAC_OVERRIDE (capability 1) from its effective
    and permitted sets, so a folder of mode 0555 is read-only to it (a user without root sees the same)."""
    import ctypes

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    libc = ctypes.CDLL(None, use_errno=True)
    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    data[0].effective &= ~(1 << 1)
    data[0].permitted &= ~(1 << 1)
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def cli_job(job: dict, note: Callable[[str], None]) -> dict:
    """In a child: ``thorndike <argv>`` as the command line runs it (exit code, stdout, stderr), a hook installed."""
    from thorndike.cli import main

    if job.get("hook"):
        install_hook(job["hook"])
    if job.get("no_override"):
        drop_dac_override()
    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        warnings.simplefilter("always")
        try:
            code = main(job["argv"])
        except SystemExit as exit_:  # argparse's own refusals
            code = exit_.code if isinstance(exit_.code, int) else 2
        except BaseException as error:  # what main lets through is a traceback on the user's screen
            return {"uncaught": error_info(error), "stderr": err.getvalue()[-1500:]}
    return {"rc": code, "stdout": out.getvalue()[-1500:], "stderr": err.getvalue()[-1500:],
            "warnings": [str(w.message)[:400] for w in caught]}


def cli_outcome(result: dict) -> tuple[str, str]:
    """How a command line run ended: (rc or 'uncaught', the message)."""
    if result.get("status") == "timeout":
        return "timeout", "no answer within the timeout"
    if result.get("status") in ("died", "killed"):
        return "died", f"child died (exit {result.get('exitcode')})"
    if "uncaught" in result:
        return "uncaught", f"{result['uncaught']['type']}: {result['uncaught']['message']}"
    if "crash" in result:
        return "uncaught", error_text(result)
    return str(result["rc"]), result["stderr"].strip() or result["stdout"].strip()


# ---- SIGKILL: the campaign ------------------------------------------------------------------------------------------

KILL_GROUPS = {
    "SIGKILL mid-training": ("row", "timed"),
    "SIGKILL in checkpoint write": ("ckpt-rename", "ckpt-half", "prune", "final-write"),
    "SIGKILL during resume": ("csv-rewrite", "row", "ckpt-rename", "ckpt-half", "timed"),
}


def draw_hook(kind: str, rng: random.Random, rows_left: int, checkpoints_left: int, prunes_left: int,
              seconds: float) -> dict:
    """Parameters for a kill of ``kind`` among the events still to come in the run."""
    if kind == "row":
        return {"kind": "row", "k": rng.randint(1, max(rows_left, 1))}
    if kind in ("ckpt-rename", "ckpt-half"):
        return {"kind": kind, "k": rng.randint(1, max(checkpoints_left, 1)), "fraction": rng.uniform(0.05, 0.95)}
    if kind == "prune":
        return {"kind": "prune", "k": rng.randint(1, max(prunes_left, 1))}
    if kind == "timed":
        return {"kind": "timed", "delay": rng.uniform(0.0, seconds)}
    return {"kind": kind}


def describe_hook(hook: dict) -> str:
    kind = hook["kind"]
    return {"row": f"after row {hook.get('k')}", "ckpt-rename": f"checkpoint {hook.get('k')} written, not renamed",
            "ckpt-half": f"checkpoint {hook.get('k')} {hook.get('fraction', 0):.0%} written",
            "prune": f"pruning old checkpoint {hook.get('k')}", "final-write": "final.pt written, not renamed",
            "csv-rewrite": "progress.csv rewritten, not renamed",
            "timed": f"at {hook.get('delay', 0):.2f}s"}.get(kind, kind)


def resume_point(run_dir: Path) -> int | None:
    """The step a resume of ``run_dir`` would start from (None: it has no usable checkpoint)."""
    from thorndike.run import resume_state

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return resume_state(run_dir)[1]["counters"]["global_step"]
        except Exception:
            return None


def kill_case(ref: Reference, group: str, rng: random.Random, root: Path) -> Case:
    """One kill (or a kill and one or two kills of the resumes) of a fresh run, then a resume to the end, judged
    against the reference."""
    start = time.perf_counter()
    run_root = root / f"kill-{rng.getrandbits(40):010x}"
    n_rows, n_ckpts = len(ref.rows), len(ref.checkpoint_steps)
    first_kind = rng.choice(("row", "ckpt-rename")) if group == "SIGKILL during resume" else rng.choice(
        KILL_GROUPS[group])
    hooks = [draw_hook(first_kind, rng, n_rows, n_ckpts, max(n_ckpts - 2, 1), ref.learn_seconds)]
    # Placed kills come after the first checkpoint (a kill before it leaves nothing to resume, which the timed kills
    # still try now and then).
    if hooks[0]["kind"] in ("ckpt-rename", "ckpt-half"):
        hooks[0]["k"] = rng.randint(2, n_ckpts)
    elif hooks[0]["kind"] == "row":
        hooks[0]["k"] = rng.randint(1 + sum(step <= ref.checkpoint_steps[0] for step in ref.row_steps()), n_rows)
    story = []
    job = {"algo": ref.algo, "kwargs": ref.make_kwargs(run_root), "steps": ref.steps, "hook": hooks[0]}
    timed = hooks[0]["kind"] == "timed"
    result = run_one(train_job, job, kill_on="go" if timed else None, kill_after=hooks[0].get("delay", 0.0))
    story.append(f"killed {describe_hook(hooks[0])}")
    folders = list(run_root.iterdir()) if run_root.exists() else []
    if result["status"] == "killed" and not folders:  # the folder is made when learn starts
        return Case(group, ref.algo, "; ".join(story), "ok", "killed before the run folder existed: nothing to "
                    "resume", time.perf_counter() - start)
    if result["status"] != "killed" or len(folders) != 1:
        outcome = _unexpected(result, story)
        if outcome is not None:
            return Case(group, ref.algo, "; ".join(story), *outcome, time.perf_counter() - start)
        story[-1] = f"{story[-1]} (the run finished first)"
    run_dir = folders[0] if folders else None
    if group == "SIGKILL during resume" and run_dir is not None:
        for _ in range(rng.choice((1, 2))):
            at = resume_point(run_dir)
            if at is None:
                break
            rows_left = sum(step > at for step in ref.row_steps())
            checkpoints_left = sum(step > at for step in ref.checkpoint_steps)
            kind = rng.choice(KILL_GROUPS[group])
            if (kind == "row" and rows_left == 0) or (kind in ("ckpt-rename", "ckpt-half") and checkpoints_left == 0):
                kind = "csv-rewrite"
            hook = draw_hook(kind, rng, rows_left, checkpoints_left, 1,
                             ref.learn_seconds * (ref.steps - at) / ref.steps)
            job = {"resume": str(run_dir), "hook": hook}
            result = run_one(train_job, job, kill_on="go" if kind == "timed" else None,
                             kill_after=hook.get("delay", 0.0))
            story.append(f"resume from {at} killed {describe_hook(hook)}")
            if result["status"] != "killed":
                outcome = _unexpected(result, story)
                if outcome is not None:
                    return Case(group, ref.algo, "; ".join(story), *outcome, time.perf_counter() - start)
                story[-1] = f"{story[-1]} (it finished first)"
    if run_dir is None:
        return Case(group, ref.algo, "; ".join(story), "not identical", "no run folder", time.perf_counter() - start)
    at = resume_point(run_dir)
    final = run_one(cli_job, {"argv": ["train", "--resume", str(run_dir), "--progress", "false"]})
    code, message = cli_outcome(final)
    if code != "0":
        if at is None and code == "2" and "no checkpoint yet" in message:
            outcome = ("ok", f"killed before the first checkpoint; resume refuses by name: {short(message, 90)}")
        elif code in ("timeout",):
            outcome = ("hang", "the final resume did not finish")
        elif code in ("uncaught", "died"):
            outcome = ("traceback", f"final resume: {short(message)}")
        else:
            outcome = ("not identical", f"final resume refused (exit {code}): {short(message)}")
        return Case(group, ref.algo, "; ".join(story), *outcome, time.perf_counter() - start)
    verdict, detail = judge_run(run_dir, ref.run_dir)
    return Case(group, ref.algo, "; ".join(story) + f"; resumed from {at}", verdict, detail,
                time.perf_counter() - start)


def _unexpected(result: dict, story: list[str]) -> tuple[str, str] | None:
    """A child that should have been killed but was not: None when it simply finished first (then the run is still
    judged), else the outcome."""
    if result["status"] == "timeout":
        return "hang", "no progress within the timeout"
    if result["status"] == "died":
        return "traceback", f"child died (exit {result.get('exitcode')})"
    if result.get("error") or result.get("crash"):
        return "traceback", short(error_text(result))
    return None


def kill_campaign(refs: dict[str, Reference], per_algo: int, rng: random.Random, root: Path) -> Iterator[Case]:
    groups = list(KILL_GROUPS)
    for algo, ref in refs.items():
        for i in range(per_algo):
            # the three groups in turn, so that every group is covered however few kills there are
            yield kill_case(ref, groups[i % len(groups)], rng, root / "kills" / algo)


# ---- damaged and foreign files -------------------------------------------------------------------------------------

DAMAGE = {  # kind: (what is damaged, expected: "fallback" to the previous checkpoint, or "refuse" by name)
    "checkpoint truncated": "fallback", "checkpoint zero bytes": "fallback", "checkpoint random bytes": "fallback",
    "checkpoint one byte flipped": "fallback", "checkpoint wrong pickle in a valid frame": "fallback",
    "checkpoint holding no run state": "fallback", "checkpoint plain torch.save file": "fallback",
    "stale temporary checkpoint file": "fallback", "foreign checkpoint: other algorithm": "fallback",
    "foreign checkpoint: other env": "fallback", "foreign checkpoint: other seed": "fallback",
    "foreign checkpoint: other config": "fallback", "every checkpoint damaged": "refuse",
    "config.yaml missing": "refuse", "config.yaml damaged": "refuse", "config.yaml of another run": "refuse",
    "progress.csv last row half written": "csv", "progress.csv row cut inside its step": "csv",
    "progress.csv garbage": "csv", "progress.csv missing": "csv",
    "final.pt damaged, loaded directly": "refuse", "final.pt damaged, run folder loaded": "fallback",
}
QUICK_DAMAGE = ("checkpoint truncated", "checkpoint random bytes", "foreign checkpoint: other algorithm",
                "config.yaml missing", "progress.csv row cut inside its step")
OTHER_ENV = {"CartPole-v1": ("Acrobot-v1", None), "FrozenLake-v1": ("FrozenLake-v1", {"is_slippery": False})}


def framed(archive: bytes) -> bytes:
    """A zip ``archive`` signed as a checkpoint (its SHA-256 in the zip comment), so only its content is wrong."""
    return b"".join(sign(archive))


def zip_of(data: bytes) -> bytes:
    """A zip archive laid out as torch.save's, holding ``data`` as its pickle."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", data)
    return buffer.getvalue()


def foreign_file(ref: Reference, kind: str, root: Path) -> Path | None:
    """A checkpoint of another run: another algorithm, env, seed or config than the reference."""
    ex = EXAMPLES[ref.algo]
    folder = root / "foreign" / ref.algo / kind.split(": ")[1].replace(" ", "-")
    steps = max(ex.steps // 4, 1)
    if kind.endswith("other algorithm"):
        other = next(a for a in ("q_learning", "ppo") if a != ref.algo)
        oex = EXAMPLES[other]
        agent = th.make(other, env=oex.env, **oex.fields, **QUIET, run_root=str(folder))
        return agent.learn(max(oex.steps // 4, 1)).run_dir / "final.pt"
    if kind.endswith("other env"):
        if ref.env not in OTHER_ENV:
            return None
        env, kwargs = OTHER_ENV[ref.env]
        agent = th.make(ref.algo, env=env, env_kwargs=kwargs, **ex.fields, **QUIET, run_root=str(folder))
        return agent.learn(steps).run_dir / "final.pt"
    fields = dict(ex.fields)
    seed = 1 if kind.endswith("other seed") else 0
    if kind.endswith("other config"):
        fields["n_runs" if "n_runs" in fields else "ent_coef"] = fields.get("n_runs", 0) + 1 if "n_runs" in fields \
            else 0.01
    return th.make(ref.algo, env=ref.env, seed=seed, **fields, **QUIET, run_root=str(folder)).learn(steps).run_dir \
        / "final.pt"


def prepare_damage(ref: Reference, kind: str, rng: random.Random, root: Path) -> tuple[dict, Path, str]:
    """A copy of the reference run, cut back to an interrupted state (no final.pt, only its first ``m``
    checkpoints), with ``kind`` of damage applied. Returns the child's job, the run folder and the damaged file's
    name."""
    run_dir = root / "damage" / ref.algo / re.sub(r"\W+", "-", kind) / ref.run_dir.name
    shutil.copytree(ref.run_dir, run_dir)
    checkpoints = list_checkpoints(run_dir / "checkpoints")
    m = rng.randint(2, len(checkpoints) - 1)  # the newest kept checkpoint is damaged; an older one is still valid
    if not kind.startswith("final.pt"):
        (run_dir / "final.pt").unlink()
        for late in checkpoints[m:]:
            late.unlink()
    newest = checkpoints[m - 1]
    job = {"action": "resume", "path": str(run_dir)}
    target = newest
    data = newest.read_bytes()
    if kind == "checkpoint truncated":
        newest.write_bytes(data[: rng.randint(1, len(data) - 1)])
    elif kind == "checkpoint zero bytes":
        newest.write_bytes(b"")
    elif kind == "checkpoint random bytes":
        newest.write_bytes(rng.randbytes(len(data)))
    elif kind == "checkpoint one byte flipped":
        i = rng.randint(0, len(data) - 1)
        newest.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
    elif kind == "checkpoint wrong pickle in a valid frame":
        newest.write_bytes(framed(zip_of(rng.randbytes(2000))))
    elif kind == "checkpoint holding no run state":
        buffer = io.BytesIO()
        torch.save({"weights": torch.zeros(3)}, buffer)
        newest.write_bytes(framed(buffer.getvalue()))
    elif kind == "checkpoint plain torch.save file":
        torch.save(load_checkpoint(newest), newest)
    elif kind == "stale temporary checkpoint file":
        target = newest.with_name(f".step-{10**11:012d}.pt.tmp-99999")
        target.write_bytes(data[: len(data) // 2])
    elif kind.startswith("foreign checkpoint"):
        source = foreign_file(ref, kind, root)
        if source is None:
            raise LookupError("no other env for this example")
        shutil.copy(source, newest)
    elif kind == "every checkpoint damaged":
        for path in checkpoints[:m]:
            path.write_bytes(path.read_bytes()[:-7])
    elif kind == "config.yaml missing":
        target = run_dir / "config.yaml"
        target.unlink()
    elif kind == "config.yaml damaged":
        target = run_dir / "config.yaml"
        target.write_text("algo: [" + target.read_text()[:50])
    elif kind == "config.yaml of another run":
        target = run_dir / "config.yaml"
        record = yaml.safe_load(target.read_text())
        record["seed"] = 12345
        target.write_text(yaml.safe_dump(record, sort_keys=False))
    elif kind.startswith("progress.csv"):
        target = run_dir / "progress.csv"
        lines = target.read_text().splitlines(keepends=True)
        at = load_checkpoint(newest)["counters"]["global_step"]
        kept = [line for line in lines[1:] if int(line.split(",")[0]) <= at]
        after = lines[1 + len(kept)] if len(lines) > 1 + len(kept) else lines[-1]
        if kind.endswith("half written"):  # as a kill in the middle of appending the row after the checkpoint
            target.write_text("".join(lines[: 1 + len(kept)]) + after[: rng.randint(len(after) // 2, len(after) - 2)])
        elif kind.endswith("inside its step"):
            step = after.split(",")[0]
            target.write_text("".join(lines[: 1 + len(kept)]) + after[: rng.randint(1, max(len(step) - 1, 1))])
        elif kind.endswith("garbage"):
            target.write_bytes(rng.randbytes(len(target.read_bytes())))
        else:
            target.unlink()
    elif kind == "final.pt damaged, loaded directly":
        target = run_dir / "final.pt"
        target.write_bytes(target.read_bytes()[:-100])
        job = {"action": "load", "path": str(target)}
    elif kind == "final.pt damaged, run folder loaded":
        target = run_dir / "final.pt"
        target.write_bytes(target.read_bytes()[:-100])
        job = {"action": "load", "path": str(run_dir), "expect_step": ref.checkpoint_steps[-1]}
    else:
        raise ValueError(kind)
    return job, run_dir, target.name


def resume_job(job: dict, note: Callable[[str], None]) -> dict:
    """In a child: resume a run to its budget (or load a file or folder), recording the warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if job["action"] == "resume":
                agent = th.resume(job["path"], progress=False)
                at = agent.global_step
                agent.learn(agent.total_steps)
            else:
                agent = th.load(job["path"])
                at = agent.global_step
        except Exception as err:
            return {"error": error_info(err), "warnings": [str(w.message)[:400] for w in caught]}
    return {"finished": True, "at": at, "warnings": [str(w.message)[:400] for w in caught]}


def judge_damage(ref: Reference, kind: str, job: dict, run_dir: Path, damaged: str, result: dict) -> tuple[str, str]:
    expected = DAMAGE[kind]
    if result["status"] == "timeout":
        return "hang", "no answer within the timeout"
    if result["status"] != "done" or "crash" in result:
        return "traceback", f"child {result['status']}: {short(error_text(result))}"
    warned = [w for w in result["warnings"] if damaged in w]
    if "error" in result:
        error = result["error"]
        message = f"{error['type']}: {error['message']}"
        subjects = ("progress.csv",) if expected == "csv" else (damaged, str(run_dir))
        if not (error["clear"] and names(message, *subjects)):
            return "traceback", f"{short(message)} (at {error['origin']})"
        if expected in ("refuse", "csv"):
            return "ok", f"refused by name: {short(message, 120)}"
        return "not identical", f"refused although an older checkpoint is valid: {short(message)}"
    if expected == "refuse":
        return "silently accepted", f"{job['action']} went through (from step {result.get('at')})"
    if job["action"] == "load":
        if result["at"] != job.get("expect_step"):
            return "not identical", f"loaded step {result['at']}, not the newest valid {job.get('expect_step')}"
        return ("ok", f"fell back by name: {short(warned[0], 120)}") if warned else (
            "silently accepted", "the damaged file was skipped without a word")
    verdict, detail = judge_run(run_dir, ref.run_dir)
    if expected == "csv":
        if verdict == "ok":
            return "ok", f"resumed from {result['at']}: {detail}"
        reported = [w for w in result["warnings"] if "progress.csv" in w]
        if reported and verdict == "lost rows":
            return "ok", f"{detail}, reported: {short(reported[0], 100)}"
        return verdict, f"{detail} (no warning)" if not reported else detail
    if verdict != "ok":
        return verdict, detail
    if kind == "stale temporary checkpoint file":
        return "ok", f"ignored; resumed from {result['at']}: {detail}"
    if not warned:
        return "silently accepted", f"{damaged} skipped without a word ({detail})"
    return "ok", f"fell back by name, resumed from {result['at']}: {detail}"


def damage_campaign(refs: dict[str, Reference], kinds: tuple[str, ...], rng: random.Random,
                    root: Path) -> Iterator[Case]:
    for algo, ref in refs.items():
        prepared = []
        for kind in kinds:
            try:
                prepared.append((kind, *prepare_damage(ref, kind, rng, root)))
            except LookupError:
                continue  # no such variant for this example (e.g. no other env)
        start = time.perf_counter()
        results = run_batch(resume_job, [job for _, job, _, _ in prepared], timeout=RUN_TIMEOUT)
        seconds = (time.perf_counter() - start) / max(len(prepared), 1)
        for (kind, job, run_dir, damaged), result in zip(prepared, results, strict=True):
            yield Case("damaged/foreign files", algo, kind, *judge_damage(ref, kind, job, run_dir, damaged, result),
                       seconds)


# ---- config fuzz ---------------------------------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")
HUGE = (10**12, 2**70)  # refused, or harmless: a tiny run must then finish normally


def field_kind(annotation: Any) -> tuple[Any, bool]:
    """(the field's type without None, whether None is allowed)."""
    if typing.get_origin(annotation) in (typing.Union, __import__("types").UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        return rest[0], True
    return (tuple if typing.get_origin(annotation) is tuple else annotation), False


def api_values(name: str, kind: Any, optional: bool) -> list[tuple[Any, bool]]:
    """(value, surely bad) pairs for a field from the Python API; huge ints are not surely bad."""
    none = [] if optional else [None]
    containers = [[1, 2], {"a": 1}]
    if kind is int:
        bad = [-1, -(10**12), 3.5, NAN, INF, -INF, True, False, "many", "3.5", "", *none, *containers]
        return [(v, True) for v in bad] + [(v, False) for v in HUGE]
    if kind is float:
        return [(v, True) for v in [NAN, INF, -INF, True, "fast", "nan", "1e400", "", *none, *containers]]
    if kind is bool:
        return [(v, True) for v in ["maybe", 2, 0.5, NAN, -1, "2", *none, [1]]]
    if kind is str:
        choices = {"device": ["cuda:abc", "gpu", "cuda:-1"], "run_root": [""]}.get(name, ["nonsense"])
        return [(v, True) for v in [1, 1.5, True, *none, [1, 2], *choices]]
    return [(v, True) for v in [[0], [-1], [1.5], ["x"], [None], [True], "abc", 5, {"a": 1}, *none]] + [
        ([10**12], False)]


def cli_values(name: str, kind: Any) -> list[tuple[str, bool]]:
    if kind is int:
        return [("-1", True), ("3.5", True), ("nan", True), ("1000000000000", False)]
    if kind is float:
        return [("nan", True), ("inf", True), ("fast", True), ("1e400", True)]
    if kind is bool:
        return [("maybe", True), ("2", True)]
    if kind is str:
        return [({"device": "cuda:abc", "run_root": ""}.get(name, "nonsense"), True)]
    return [("[x]", True), ("[-1]", True), ("[0]", True)]


def flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


def fuzz_cases(algos: tuple[str, ...], root: Path) -> list[dict]:
    """Every (surface, algorithm, field, value) of the fuzz; the run options are fuzzed on the first algorithm."""
    cases = []
    for i, algo in enumerate(algos):
        cls = get_algorithm(algo)
        hints = typing.get_type_hints(cls.Config)
        owners = [(cls.Config, hints)] + ([(RunOptions, typing.get_type_hints(RunOptions))] if i == 0 else [])
        for owner, owner_hints in owners:
            for field in dataclasses.fields(owner):
                kind, optional = field_kind(owner_hints[field.name])
                for value, surely in api_values(field.name, kind, optional):
                    cases.append({"surface": "api", "algo": algo, "field": field.name, "value": value,
                                  "surely": surely})
                for value, surely in cli_values(field.name, kind):
                    cases.append({"surface": "cli", "algo": algo, "field": field.name, "value": value,
                                  "surely": surely})
        ex = EXAMPLES[algo]
        for seed in (True, -1, 2**70, 2**64, 1.5, "0", None, NAN):
            cases.append({"surface": "api", "algo": algo, "field": "seed", "value": seed, "surely": True,
                          "special": "seed"})
        for env in ("os:getcwd", "os:nonexistent", "NoSuchEnv-v0", "CartPol-v1", "", 42, None):
            cases.append({"surface": "api", "algo": algo, "field": "env", "value": env, "surely": True,
                          "special": "env", "subjects": [str(env), "env"]})
        for steps in (0, -1, 1.5, True, None, "100"):
            cases.append({"surface": "api", "algo": algo, "field": "total_steps", "value": steps, "surely": True,
                          "special": "steps"})
        cases.append({"surface": "api", "algo": algo, "field": "env_kwargs", "value": {"no_such_kwarg": 1},
                      "surely": True, "special": "env_kwargs", "subjects": ["no_such_kwarg"]})
        for wrappers, subjects in ((["no_such_wrapper"], ["'no_such_wrapper'"]),
                                   ("time_limit", ["'time_limit'", "a list"]),  # a name, not a list of names
                                   ([{"name": "time_limit", "max_episode_steps": -1}], ["max_episode_steps"])):
            cases.append({"surface": "api", "algo": algo, "field": "wrappers", "value": wrappers, "surely": True,
                          "special": "wrappers", "subjects": subjects})
        # a float field the example does not set (its own values would override the file's)
        free = next(f.name for f in dataclasses.fields(cls.Config)
                    if f.name not in ex.fields and field_kind(hints[f.name])[0] is float)
        for name, text, subject in (("broken", "lr: [1, 2\n", None), ("a list", "- 1\n- 2\n", None),
                                    ("unknown field", "no_such: 1\n", "no_such"),
                                    ("nan value", f"{free}: .nan\n", free), ("missing", None, None)):
            path = root / "yaml" / f"{algo}-{name.replace(' ', '_')}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            if text is not None:
                path.write_text(text)
            cases.append({"surface": "api", "algo": algo, "field": f"config file ({name})", "value": str(path),
                          "surely": True, "special": "config", "subjects": [subject or path.name]})
            cases.append({"surface": "cli", "algo": algo, "field": f"config file ({name})", "value": str(path),
                          "surely": True, "special": "config", "subjects": [subject or path.name]})
        for flag, value, subjects in (("--env", "os:getcwd", ["os:getcwd"]), ("--seed", "2**70", ["--seed"]),
                                      ("--seed", "-1", ["seed"]), ("--steps", "0", ["steps"]),
                                      ("--steps", "-5", ["steps"]),
                                      ("--env-kwargs", "nonsense", ["--env-kwargs"]),
                                      ("--env-kwargs", "no_such_kwarg=1", ["no_such_kwarg"]),
                                      ("--wrappers", "no_such_wrapper", ["no_such_wrapper"])):
            cases.append({"surface": "cli", "algo": algo, "field": flag, "value": value, "surely": True,
                          "special": "flag", "subjects": subjects})
    for case in cases:
        case["run_root"] = str(root / "fuzz" / case["algo"])
    return cases


def fuzz_job(case: dict, note: Callable[[str], None]) -> dict:
    """In a child: build the agent with the bad value (API) or run the command line; when it is accepted, learn the
    tiny example to see what the value does."""
    algo, field, value = case["algo"], case["field"], case["value"]
    ex = EXAMPLES[algo]
    options = dict(QUIET, run_root=case["run_root"])
    if case["surface"] == "cli":
        fields = {k: v for k, v in ex.fields.items() if k != field}
        argv = ["train", algo, "--env", ex.env, "--steps", str(ex.steps), "--progress", "false", "--tensorboard",
                "false", "--pictures", "false"]
        if field != "run_root":
            argv += ["--run-root", case["run_root"]]
        for key, v in fields.items():
            argv += [f"--{key.replace('_', '-')}", flag_value(v)]
        special = case.get("special")
        if special == "config":
            argv += ["--config", value]
        elif special == "flag":
            if value and field in ("--env", "--steps"):
                argv[argv.index(field) + 1] = value
            else:
                argv += [field, value]
        else:
            argv += [f"--{field.replace('_', '-')}", value]
        return cli_job({"argv": argv}, note)
    special = case.get("special")
    kwargs: dict[str, Any] = dict(env=ex.env, seed=0, **ex.fields, **options)
    steps: Any = ex.steps
    if special == "seed":
        kwargs["seed"] = value
    elif special == "env":
        kwargs["env"] = value
    elif special == "steps":
        steps = value
    elif special in ("env_kwargs", "wrappers"):
        kwargs[special] = value
    elif special == "config":
        kwargs["config"] = value
    else:
        kwargs[field] = value
    try:
        agent = th.make(algo, **kwargs)
    except Exception as err:
        return {"stage": "construction", "error": error_info(err)}
    note("constructed")
    try:
        agent.learn(steps)
    except Exception as err:
        return {"stage": "learn", "error": error_info(err)}
    return {"stage": "finished", "finite": state_is_finite(agent)}


def judge_fuzz(case: dict, result: dict) -> tuple[str, str]:
    field = case["field"]
    subjects = case.get("subjects") or [field, f"--{field.replace('_', '-')}"]
    surely = case["surely"]
    constructed = "constructed" in result.get("notes", [])
    if result["status"] == "timeout":
        return "hang", ("accepted, then " if constructed else "") + "no answer within the timeout"
    if result["status"] != "done":
        return "traceback", f"child died (exit {result.get('exitcode')}, memory limit?)" + (
            " after construction" if constructed else "")
    if "crash" in result:
        return "traceback", short(error_text(result))
    if case["surface"] == "cli":
        code, message = cli_outcome(result)
        if code == "uncaught":
            return "traceback", short(message)
        if code == "2" and "Traceback" not in message:
            return ("ok", short(message, 120)) if names(message, *subjects) else (
                "traceback", f"refused without naming {field}: {short(message)}")
        if code == "0":
            return ("silently accepted", "the run went through") if surely else ("ok", "accepted; the run went "
                                                                                 "through normally")
        return ("silently accepted" if "Traceback" not in message else "traceback"), \
            f"exit {code} during the run: {short(message)}"
    if result["stage"] == "finished":
        if surely:
            return "silently accepted", "built and trained" + ("" if result["finite"] else "; non-finite state")
        return ("ok", "accepted; a tiny run went through normally") if result["finite"] else (
            "silently accepted", "accepted; the trained state is not finite")
    error = result["error"]
    message = f"{error['type']}: {error['message']}"
    if not error["clear"]:
        return "traceback", f"{short(message)} (at {error['origin']})"
    if not names(message, *subjects):
        return "traceback", f"clear type but {field} not named: {short(message)}"
    if result["stage"] == "learn" and case.get("special") != "steps":
        return "silently accepted", f"accepted at construction, stopped in learn: {short(message)}"
    return "ok", short(message, 120)


def fuzz_campaign(algos: tuple[str, ...], sample: int | None, rng: random.Random, root: Path) -> Iterator[Case]:
    cases = fuzz_cases(algos, root)
    if sample is not None and sample < len(cases):
        cases = rng.sample(cases, sample)
    for algo in algos:
        mine = [c for c in cases if c["algo"] == algo]
        start = time.perf_counter()
        results = run_batch(fuzz_job, mine, timeout=CASE_TIMEOUT)
        seconds = (time.perf_counter() - start) / max(len(mine), 1)
        for case, result in zip(mine, results, strict=True):
            category = f"config fuzz ({case['surface'].upper() if case['surface'] == 'cli' else 'API'})"
            label = f"{case['field']}={case['value']!r}"
            yield Case(category, algo, label, *judge_fuzz(case, result), seconds)


# ---- faulty envs ---------------------------------------------------------------------------------------------------

FAULT_STEP = 125  # per env copy: after the first checkpoint of every example, and not an episode's last step


class FaultyBox(gym.Env):
    """CartPole-sized: Box(3) observations, two actions, episodes of 10 steps; ``fault`` strikes at step
    FAULT_STEP of the copy (counted across episodes)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)
    fault = ""

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = getattr(self, "t", 0)
        return np.full(3, 0.1, np.float32), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        terminated = self.t % 10 == 0
        obs, reward = np.full(3, 0.1 * (self.t % 7), np.float32), float(action)
        if self.t == FAULT_STEP + (10 - FAULT_STEP % 10 if self.fault == "NaN final observation" else 0):
            if self.fault in ("NaN observation", "NaN final observation"):
                obs = np.full(3, np.nan, np.float32)
            elif self.fault == "NaN reward":
                reward = math.nan
            elif self.fault == "inf reward":
                reward = math.inf
            elif self.fault == "wrong observation shape":
                obs = np.zeros(4, np.float32)
            elif self.fault == "string observation":
                obs = np.array(["a", "b", "c"])
            elif self.fault == "exception in step":
                raise RuntimeError("the simulator crashed")
        return obs, reward, terminated, False, {}


class FaultyGrid(gym.Env):
    """FrozenLake-sized: 16 discrete states, four actions, episodes of 10 steps; ``fault`` at step FAULT_STEP."""

    observation_space = gym.spaces.Discrete(16)
    action_space = gym.spaces.Discrete(4)
    fault = ""

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = getattr(self, "t", 0)
        return 0, {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        terminated = self.t % 10 == 0
        state, reward = (self.t + int(action)) % 16, float(terminated)
        if self.t == FAULT_STEP:
            if self.fault == "NaN reward":
                reward = math.nan
            elif self.fault == "inf reward":
                reward = math.inf
            elif self.fault == "state -1":
                state = -1
            elif self.fault == "state 16 of 16":
                state = 16
            elif self.fault == "fractional state 2.5":
                state = 2.5
            elif self.fault == "exception in step":
                raise RuntimeError("the simulator crashed")
        return state, reward, terminated, False, {}


BOX_FAULTS = ("NaN observation", "NaN final observation", "NaN reward", "inf reward", "wrong observation shape",
              "string observation", "exception in step")
GRID_FAULTS = ("NaN reward", "inf reward", "state -1", "state 16 of 16", "fractional state 2.5", "exception in step")


def faulty_env(base: type, fault: str) -> type:
    """A subclass of ``base`` with ``fault`` set, registered in this module so that checkpoints can pickle it."""
    name = base.__name__ + "_" + re.sub(r"\W+", "_", fault)
    cls = globals().get(name)
    if cls is None:
        cls = type(name, (base,), {"fault": fault, "__module__": __name__})
        globals()[name] = cls
    return cls


for _base, _faults in ((FaultyBox, BOX_FAULTS), (FaultyGrid, GRID_FAULTS)):
    for _fault in _faults:
        faulty_env(_base, _fault)  # defined at import, so a child finds them by name


def env_job(case: dict, note: Callable[[str], None]) -> dict:
    ex = EXAMPLES[case["algo"]]
    env = faulty_env(FaultyBox if case["base"] == "box" else FaultyGrid, case["fault"])
    try:
        agent = th.make(case["algo"], env=env, seed=0, **ex.fields, **QUIET, run_root=case["run_root"],
                        checkpoint_every=max(ex.steps // 8, 1))
    except Exception as err:
        return {"stage": "construction", "error": error_info(err)}
    note("constructed")
    try:
        agent.learn(ex.steps)
    except Exception as err:
        return {"stage": "learn", "error": error_info(err), "step": agent.global_step}
    return {"stage": "finished", "finite": state_is_finite(agent), "step": agent.global_step}


def judge_env(result: dict) -> tuple[str, str]:
    if result["status"] == "timeout":
        return "hang", "no answer within the timeout"
    if result["status"] != "done" or "crash" in result:
        return "traceback", f"child {result['status']}: {short(error_text(result))}"
    if result["stage"] == "finished":
        return "silently accepted", "trained to the end" + ("" if result["finite"] else "; the state is not finite")
    error = result["error"]
    message = f"{error['type']}: {error['message']}"
    if result["stage"] == "construction":
        return ("ok", f"refused at construction: {short(message, 120)}") if error["clear"] else (
            "traceback", short(message))
    body = error["message"].split(" | ")[0]  # the error itself, without the run's note on where it stopped
    if "copy" in body and "step" in body:
        return "ok", short(message, 140)
    return "traceback", f"{short(message)} (at {error['origin']}; step and env copy not both named)"


def supports(algo: str, base: type) -> bool:
    try:
        get_algorithm(algo).check_spaces(base.observation_space, base.action_space)
    except Exception:
        return False
    return True


def env_campaign(algos: tuple[str, ...], quick: bool, rng: random.Random, root: Path) -> Iterator[Case]:
    for algo in algos:
        cases = []
        for base, label, faults in ((FaultyBox, "box", BOX_FAULTS), (FaultyGrid, "grid", GRID_FAULTS)):
            if supports(algo, base):
                chosen = rng.sample(faults, 2) if quick else faults
                cases += [{"algo": algo, "base": label, "fault": f, "run_root": str(root / "envs" / algo)}
                          for f in chosen]
        start = time.perf_counter()
        results = run_batch(env_job, cases, timeout=RUN_TIMEOUT / 2)
        seconds = (time.perf_counter() - start) / max(len(cases), 1)
        for case, result in zip(cases, results, strict=True):
            obs = "Box obs" if case["base"] == "box" else "Discrete obs"
            yield Case("faulty envs", algo, f"{case['fault']} ({obs})", *judge_env(result), seconds)


# ---- the file system -----------------------------------------------------------------------------------------------


def train_argv(ref: Reference, run_root: Path, keep: int = 2) -> list[str]:
    argv = ["train", ref.algo, "--env", ref.env, "--steps", str(ref.steps), "--run-root", str(run_root),
            "--checkpoint-every", str(ref.checkpoint_every), "--keep-checkpoints", str(keep), "--progress", "false",
            "--tensorboard", "false", "--pictures", "false"]
    for key, value in ref.fields.items():
        argv += [f"--{key.replace('_', '-')}", flag_value(value)]
    return argv


def clear_cli_error(result: dict, *subjects: str) -> tuple[bool, str]:
    """Whether a command line run ended with one clear paragraph (exit 1 or 2, no traceback) naming a subject."""
    code, message = cli_outcome(result)
    return code in ("1", "2") and "Traceback" not in message and names(message, *subjects), f"exit {code}: " + \
        short(message, 140)


def fs_enospc(ref: Reference, kind: str, rng: random.Random, root: Path) -> tuple[str, str]:
    """A full disk during one write: one clear paragraph with the resume hint, no temporary file left, and (once the
    disk has room again) a resume that ends bit for bit like the uninterrupted run."""
    run_root = root / "enospc" / ref.algo / kind
    # the k-th checkpoint or row written after the first checkpoint, so that there is something to resume from
    first_row_after = 1 + sum(step <= ref.checkpoint_steps[0] for step in ref.row_steps())
    k = {"enospc-ckpt": rng.randint(2, len(ref.checkpoint_steps)),
         "enospc-row": rng.randint(first_row_after, len(ref.rows))}.get(kind, 1)
    hook = {"kind": kind, "k": k, "fraction": rng.uniform(0.1, 0.9)}
    result = run_one(cli_job, {"argv": train_argv(ref, run_root), "hook": hook})
    code, message = cli_outcome(result)
    if code in ("timeout",):
        return "hang", "no answer within the timeout"
    if code == "0":
        return "silently accepted", "the run reported success although a write failed"
    clear, said = clear_cli_error(result, "No space left")
    if not clear:
        return "traceback", said
    folders = list(run_root.iterdir())
    if len(folders) != 1:
        return "not identical", f"{len(folders)} run folders"
    run_dir = folders[0]
    debris = [p.name for p in run_dir.rglob("*.tmp-*")]
    if debris:
        return "not identical", f"temporary file left behind after ENOSPC: {debris}"
    if kind == "enospc-config":
        return "ok", f"{said}; nothing else written"
    resumed = run_one(cli_job, {"argv": ["train", "--resume", str(run_dir), "--progress", "false"]})
    rc, text = cli_outcome(resumed)
    if rc != "0":
        return ("hang" if rc == "timeout" else "not identical"), f"resume after the full disk: exit {rc}: " \
            f"{short(text)}"
    verdict, detail = judge_run(run_dir, ref.run_dir)
    if verdict == "ok" and "--resume" not in message:  # the run can go on, but the error does not say so, or where
        return "traceback", f"unclear error: no run folder, no resume hint ({said}); the resume itself: {detail}"
    return verdict, f"{detail}; the failure said: {short(message, 80)}"


def same_name_job(job: dict, note: Callable[[str], None]) -> dict:
    """In a child: wait for the common start, then train; with ``fixed_time`` every launch gets the same timestamp,
    so their folder names collide."""
    import thorndike.run as run_module

    if job.get("fixed_time"):
        from datetime import datetime

        class Frozen(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> datetime:
                return datetime(2024, 1, 1, 12, 0, 0, 123456)

        run_module.datetime = Frozen
    while time.time() < job["start_at"]:
        time.sleep(0.001)
    try:
        agent = th.make(job["algo"], **job["kwargs"])
        agent.learn(job["steps"])
    except Exception as err:
        return {"error": error_info(err)}
    return {"run_dir": str(agent.run_dir)}


def fs_same_name(ref: Reference, fixed_time: bool, root: Path, launches: int = 3) -> tuple[str, str]:
    run_root = root / "same-name" / ref.algo / ("fixed" if fixed_time else "natural")
    start_at = time.time() + 1.5
    ctx = context()
    jobs = [{"algo": ref.algo, "kwargs": ref.make_kwargs(run_root), "steps": ref.steps, "start_at": start_at,
             "fixed_time": fixed_time} for _ in range(launches)]
    readers, processes = [], []
    for job in jobs:  # at the same moment: one child each, not a batch
        reader, writer = ctx.Pipe(duplex=False)
        process = ctx.Process(target=_child, args=(writer, same_name_job, [job], MEMORY_HEADROOM), daemon=True)
        process.start()
        writer.close()
        readers.append(reader)
        processes.append(process)
    results = []
    for reader, process in zip(readers, processes, strict=True):
        result = None
        deadline = time.monotonic() + RUN_TIMEOUT
        while result is None and time.monotonic() < deadline:
            if reader.poll(max(deadline - time.monotonic(), 0)):
                try:
                    message = reader.recv()
                except EOFError:
                    break
                if message[0] == "done":
                    result = message[2]
        if result is None:
            process.kill()
        process.join()
        results.append(result)
    if any(r is None for r in results):
        return "hang", "a launch did not finish"
    errors = [r for r in results if "error" in r or "crash" in r]
    if errors:
        return "traceback", short(error_text(errors[0]))
    folders = {r["run_dir"] for r in results}
    if len(folders) != launches:
        return "not identical", f"{launches} launches wrote into {len(folders)} folder(s)"
    verdicts = [judge_run(Path(f), ref.run_dir) for f in sorted(folders)]
    bad = [v for v in verdicts if v[0] != "ok"]
    if bad:
        return bad[0]
    return "ok", f"{launches} distinct folders, each bit-identical to the reference"


def fs_case(ref: Reference, name: str, rng: random.Random, root: Path) -> tuple[str, str]:
    base = root / "fs" / ref.algo / re.sub(r"\W+", "-", name)
    base.mkdir(parents=True)
    if name == "run_root is a file":
        target = base / "runs"
        target.write_text("not a folder")
        result = run_one(cli_job, {"argv": train_argv(ref, target)})
        clear, said = clear_cli_error(result, "run_root")
        return ("ok" if clear else "traceback" if cli_outcome(result)[0] != "0" else "silently accepted"), said
    if name == "run_root inside a file":
        target = base / "runs"
        target.write_text("not a folder")
        result = run_one(cli_job, {"argv": train_argv(ref, target / "inner")})
        clear, said = clear_cli_error(result, "run_root")
        return ("ok" if clear else "traceback" if cli_outcome(result)[0] != "0" else "silently accepted"), said
    if name == "run_root read-only":
        target = base / "runs"
        target.mkdir()
        target.chmod(0o555)
        result = run_one(cli_job, {"argv": train_argv(ref, target), "no_override": os.geteuid() == 0})
        clear, said = clear_cli_error(result, "run_root")
        return ("ok" if clear else "traceback" if cli_outcome(result)[0] != "0" else "silently accepted"), said
    if name == "run folder read-only at resume":
        run_dir = base / ref.run_dir.name
        shutil.copytree(ref.run_dir, run_dir)
        (run_dir / "final.pt").unlink()
        for late in list_checkpoints(run_dir / "checkpoints")[2:]:
            late.unlink()
        for path in [run_dir, *run_dir.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        result = run_one(cli_job, {"argv": ["train", "--resume", str(run_dir), "--progress", "false"],
                                   "no_override": os.geteuid() == 0})
        # the error must say what is wrong: the folder cannot be written (not, say, that no checkpoint is valid)
        clear, said = clear_cli_error(result, "Permission denied", "not writable", "read-only", "cannot be written")
        return ("ok" if clear else "traceback" if cli_outcome(result)[0] != "0" else "silently accepted"), said
    if name.startswith("full disk"):
        kind = {"full disk: checkpoint": "enospc-ckpt", "full disk: progress.csv row": "enospc-row",
                "full disk: config.yaml": "enospc-config", "full disk: final.pt": "enospc-final"}[name]
        return fs_enospc(ref, kind, rng, base)
    if name.startswith("same run launched 3 times"):
        return fs_same_name(ref, fixed_time="same microsecond" in name, root=base)
    raise ValueError(name)


FS_CASES = ("run_root is a file", "run_root inside a file", "run_root read-only", "run folder read-only at resume",
            "full disk: checkpoint", "full disk: progress.csv row", "full disk: config.yaml", "full disk: final.pt",
            "same run launched 3 times, same microsecond", "same run launched 3 times at once")
QUICK_FS = ("run_root is a file", "run_root read-only", "full disk: checkpoint",
            "same run launched 3 times, same microsecond")


def fs_campaign(refs: dict[str, Reference], names_: tuple[str, ...], rng: random.Random, root: Path
                ) -> Iterator[Case]:
    for algo, ref in refs.items():
        for name in names_:
            start = time.perf_counter()
            yield Case("filesystem", algo, name, *fs_case(ref, name, rng, root), time.perf_counter() - start)


# ---- the campaign and its table ------------------------------------------------------------------------------------

CATEGORIES = ("kills", "damage", "fuzz", "envs", "fs")


def campaign(algos: tuple[str, ...], quick: bool, seed: int, root: Path, categories: tuple[str, ...] = CATEGORIES,
             kills_per_algo: int | None = None, fuzz_sample: int | None = None,
             report: Callable[[Case], None] = lambda case: None) -> list[Case]:
    """Run the chosen categories of faults on ``algos``; every case is passed to ``report`` as it is judged."""
    rng = random.Random(seed)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # the reference runs' own warnings are not what is measured here
    refs = {algo: make_reference(algo, root) for algo in algos} if set(categories) & {"kills", "damage", "fs"} \
        else {}
    steps: list[Iterator[Case]] = []
    if "kills" in categories:
        steps.append(kill_campaign(refs, kills_per_algo or (3 if quick else 20), rng, root))
    if "damage" in categories:
        steps.append(damage_campaign(refs, QUICK_DAMAGE if quick else tuple(DAMAGE), rng, root))
    if "fuzz" in categories:
        steps.append(fuzz_campaign(algos, fuzz_sample or (60 if quick else None), rng, root))
    if "envs" in categories:
        steps.append(env_campaign(algos, quick, rng, root))
    if "fs" in categories:
        fs_refs = {next(iter(refs)): refs[next(iter(refs))]} if quick else refs
        steps.append(fs_campaign(fs_refs, QUICK_FS if quick else FS_CASES, rng, root))
    cases = []
    for step in steps:
        for case in step:
            report(case)
            cases.append(case)
    return cases


def table(cases: list[Case]) -> str:
    """category x algorithm -> how many cases ended in each outcome (markdown)."""
    groups: dict[tuple[str, str], Counter] = {}
    for case in cases:
        groups.setdefault((case.category, case.algo), Counter())[case.outcome] += 1
    lines = ["| category | algorithm | " + " | ".join(OUTCOMES) + " | cases |",
             "| --- | --- | " + " | ".join("---:" for _ in OUTCOMES) + " | ---: |"]
    for (category, algo), counts in groups.items():
        cells = [str(counts[o]) if counts[o] else "" for o in OUTCOMES]
        lines.append(f"| {category} | {algo} | " + " | ".join(cells) + f" | {sum(counts.values())} |")
    total = Counter(case.outcome for case in cases)
    lines.append("| **all** | | " + " | ".join(f"**{total[o]}**" for o in OUTCOMES) + f" | **{len(cases)}** |")
    return "\n".join(lines)


def failures(cases: list[Case]) -> str:
    bad = [c for c in cases if c.outcome != "ok"]
    lines = ["| category | algorithm | case | outcome | detail |", "| --- | --- | --- | --- | --- |"]
    for c in bad:
        lines.append(f"| {c.category} | {c.algo} | {short(c.case, 70)} | {c.outcome} | "
                     f"{short(c.detail, 150).replace('|', '/')} |")
    return "\n".join(lines) if bad else "(none)"


def write_json(path: Path, payload: dict) -> None:
    """The campaign as JSON, one case per line (readable diffs between campaigns)."""
    head = json.dumps({k: v for k, v in payload.items() if k != "cases"})[:-1]
    cases = ",\n".join(json.dumps(case) for case in payload["cases"])
    path.write_text(f'{head}, "cases": [\n{cases}\n]}}\n')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few cases of each kind (about two minutes)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the RNG that draws kill moments and damage")
    parser.add_argument("--algos", nargs="+", default=None, help=f"default: {' '.join(FULL_ALGOS)} "
                        f"(--quick: {' '.join(QUICK_ALGOS)})")
    parser.add_argument("--categories", nargs="+", default=list(CATEGORIES), choices=CATEGORIES)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for faults.md and faults.json")
    parser.add_argument("--keep", action="store_true", help="keep the runs' folders (printed at the end)")
    args = parser.parse_args()
    algos = tuple(args.algos or (QUICK_ALGOS if args.quick else FULL_ALGOS))
    root = Path(tempfile.mkdtemp(prefix="thorndike-faults-"))
    start = time.perf_counter()

    def report(case: Case) -> None:
        if case.outcome != "ok":
            print(f"  {case.outcome:>17}  {case.category} / {case.algo} / {short(case.case, 60)}: "
                  f"{short(case.detail, 120)}", flush=True)

    print(f"fault campaign on {', '.join(algos)} (seed {args.seed}{', quick' if args.quick else ''}); cases that "
          "are not ok:", flush=True)
    try:
        cases = campaign(algos, args.quick, args.seed, root, tuple(args.categories), report=report)
    finally:
        if not args.keep:
            for path in [root, *root.rglob("*")]:  # read-only folders from the file system cases
                with contextlib.suppress(OSError):
                    path.chmod(0o755 if path.is_dir() else 0o644)
            shutil.rmtree(root, ignore_errors=True)
    seconds = time.perf_counter() - start
    text = table(cases)
    print(f"\n{text}\n\n{len(cases)} cases in {seconds:.0f} s")
    stem = "faults_quick" if args.quick else "faults"
    args.out.mkdir(parents=True, exist_ok=True)
    header = (f"# Fault campaign ({'quick, ' if args.quick else ''}seed {args.seed})\n\n"
              f"`python benchmarks/faults.py{' --quick' if args.quick else ''} --seed {args.seed}` on "
              f"{', '.join(algos)}: {len(cases)} cases in {seconds:.0f} s. Outcomes are defined in the script's "
              "docstring.\n\n")
    (args.out / f"{stem}.md").write_text(header + text + "\n\n## Cases that are not ok\n\n" + failures(cases) + "\n")
    write_json(args.out / f"{stem}.json", {"seed": args.seed, "quick": args.quick, "algos": algos,
                                           "seconds": seconds, "cases": [dataclasses.asdict(c) for c in cases]})
    print(f"wrote {args.out / (stem + '.md')} and {stem}.json" + (f"; runs kept in {root}" if args.keep else ""))


if __name__ == "__main__":
    main()
