"""Multi-seed experiments: one algorithm, env and config trained with several seeds in parallel processes.

``thorndike train ppo --env CartPole-v1 --seeds 0-9`` makes ``runs/<algo>-<env>-<time>-seeds/`` holding one run
folder per seed (the usual ``<algo>-<env>-<seed>-<time>/``), ``logs/seed-<n>.log`` (what each seed's process
printed) and ``experiment.yaml``: how each seed is made (so it can be started again) and, per seed, its run folder
and status (pending, running, done, failed, killed, interrupted).

Each seed trains in its own process (up to ``workers`` at once): a seed that fails or is killed loses nothing of
the others. ``thorndike train --resume EXPERIMENT`` goes on with every seed that is not done: from its newest
checkpoint (exact resume, as for one run), or from the start when it stopped before its first checkpoint.

Processes are forked from a server process that has imported thorndike once (multiprocessing's "forkserver"), so
a seed starts in milliseconds rather than the seconds a fresh interpreter needs to import torch. As with any
multiprocessing start method but fork, a script that calls :func:`start_experiment` itself must guard its entry
point with ``if __name__ == "__main__":`` (the ``thorndike`` command does).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import shutil
import sys
import traceback
from collections.abc import Sequence
from datetime import datetime
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import yaml

from thorndike.config import ConfigError
from thorndike.core.checkpoint import list_checkpoints, write_atomically

__all__ = ["Experiment", "available_cores", "is_experiment", "make_record", "parse_seeds", "resume_experiment",
           "start_experiment"]

EXPERIMENT_FILE = "experiment.yaml"


def parse_seeds(items: Sequence[str | int]) -> list[int]:
    """Seeds from the command line: ``["0-9"]``, ``["0", "1", "2"]``, ``["0-4,7"]`` (ranges include both ends);
    repeats are dropped, the order kept."""
    seeds: list[int] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if match is None:
                raise ConfigError(f"invalid seeds {part!r}: give whole numbers >= 0 and ranges, e.g. --seeds 0-9, "
                                  "--seeds 0 1 2 or --seeds 0-4,7")
            first, last = int(match.group(1)), int(match.group(2) or match.group(1))
            if last < first:
                raise ConfigError(f"invalid seed range {part!r}: it ends before it starts")
            seeds.extend(s for s in range(first, last + 1) if s not in seeds)
    if not seeds:
        raise ConfigError("no seeds given")
    return seeds


def available_cores() -> int:
    """The CPU cores this process may use (its affinity where the system says, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def is_experiment(path: str | Path) -> bool:
    return (Path(path) / EXPERIMENT_FILE).is_file()


class Experiment:
    """An experiment folder and its ``experiment.yaml``: ``make`` (algo, env, env_kwargs, wrappers, config file,
    fields, run options), ``steps``, ``seeds`` and ``runs`` (one entry per seed: ``seed``, ``run``, ``status``)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        path = self.folder / EXPERIMENT_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{folder} is not an experiment folder (no {EXPERIMENT_FILE})")
        self.record: dict[str, Any] = yaml.safe_load(path.read_text())

    @classmethod
    def create(cls, make: dict[str, Any], steps: int, seeds: list[int], run_root: str | Path) -> Experiment:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        # an algorithm without env (the LM trainers) is named by its task, as its runs are by nothing but the seed
        label = make["env"] if make["env"] is not None else make.get("fields", {}).get("task", "")
        name = "-".join(p for p in [make["algo"], str(label), stamp, "seeds"] if p).replace("/", "_")
        folder = Path(run_root) / name
        for attempt in range(1, 1000):
            try:
                folder.mkdir(parents=True, exist_ok=False)
                break
            except FileExistsError:  # two experiments started in the same second
                folder = folder.with_name(f"{name}-{attempt}")
        record = {"algo": make["algo"], "env": make["env"], "steps": steps, "seeds": seeds, "make": make,
                  "runs": [{"seed": s, "run": None, "status": "pending"} for s in seeds]}
        write_atomically(folder / EXPERIMENT_FILE, yaml.safe_dump(record, sort_keys=False).encode())
        return cls(folder)

    def save(self) -> None:
        write_atomically(self.folder / EXPERIMENT_FILE, yaml.safe_dump(self.record, sort_keys=False).encode())

    @property
    def runs(self) -> list[dict[str, Any]]:
        return self.record["runs"]

    def entry(self, seed: int) -> dict[str, Any]:
        return next(e for e in self.runs if e["seed"] == seed)

    def run_dir(self, seed: int) -> Path | None:
        """The seed's run folder: the one recorded, else the newest folder here whose config.yaml has this seed."""
        recorded = self.entry(seed)["run"]
        if recorded and (self.folder / recorded / "config.yaml").is_file():
            return self.folder / recorded
        found = []
        for config in self.folder.glob("*/config.yaml"):
            try:
                if (yaml.safe_load(config.read_text()) or {}).get("seed") == seed:
                    found.append(config.parent)
            except yaml.YAMLError:
                continue
        return max(found, key=lambda p: p.name) if found else None

    def run_dirs(self) -> list[tuple[int, Path]]:
        """(seed, run folder) of every seed that has one."""
        return [(e["seed"], d) for e in self.runs if (d := self.run_dir(e["seed"])) is not None]


def _train_seed(make: dict[str, Any], seed: int, steps: int, folder: str, resume: str | None, log: str,
                cwd: str, sys_path: list[str], environ: dict[str, str]) -> None:
    """One seed, in its own process: print to its log, then train (or resume) it."""
    os.chdir(cwd)  # a forked server's children start where the server started: take the caller's place and paths
    sys.path[:] = sys_path
    os.environ.clear()
    os.environ.update(environ)
    with open(log, "a", buffering=1) as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            import thorndike as th

            if resume is not None:
                agent = th.resume(resume, progress=False)
                print(f"resuming {resume} at step {agent.global_step} of {max(steps, agent.total_steps)}", flush=True)
                agent.learn(max(steps, agent.total_steps))
            else:
                agent = th.make(make["algo"], env=make["env"], seed=seed, config=make.get("config"),
                                env_kwargs=make.get("env_kwargs"), wrappers=make.get("wrappers"),
                                **{**make.get("fields", {}), "run_root": folder, "progress": False})
                agent.learn(steps)
            print(f"seed {seed} done at step {agent.global_step}: {agent.run_dir}", flush=True)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            raise SystemExit(1) from None


def _context(algo: str) -> Any:
    if "forkserver" in mp.get_all_start_methods():
        from thorndike.registry import ALGORITHMS

        context = mp.get_context("forkserver")
        # Imported once in the server rather than in every seed: the algorithm's module, the pictures' matplotlib
        # and torch._dynamo (which the first optimiser a seed builds imports): seconds each on a busy machine.
        context.set_forkserver_preload(["thorndike", "thorndike.experiment", ALGORITHMS[algo].partition(":")[0],
                                        "thorndike.plot", "torch._dynamo"])
        return context
    return mp.get_context("spawn")


def _status(exitcode: int | None) -> str:
    if exitcode == 0:
        return "done"
    if exitcode is not None and exitcode < 0:
        import signal

        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = str(-exitcode)
        return f"killed ({name})"
    return f"failed (exit {exitcode})"


def run_seeds(experiment: Experiment, jobs: list[tuple[int, str | None]], workers: int) -> dict[int, str]:
    """Train ``jobs`` (seed, run folder to resume or None) with up to ``workers`` processes at once; each seed's
    status and run folder go into ``experiment.yaml`` as soon as they change. Returns each seed's status."""
    context = _context(experiment.record["algo"])
    logs = experiment.folder / "logs"
    logs.mkdir(exist_ok=True)
    pending, running, statuses = list(jobs), {}, {}
    steps = int(experiment.record["steps"])

    def record(seed: int, status: str) -> None:
        entry = experiment.entry(seed)
        entry["status"] = status
        run_dir = experiment.run_dir(seed)
        entry["run"] = run_dir.name if run_dir is not None else None
        experiment.save()

    try:
        while pending or running:
            while pending and len(running) < workers:
                seed, resume = pending.pop(0)
                process = context.Process(
                    target=_train_seed, name=f"thorndike-seed-{seed}",
                    args=(experiment.record["make"], seed, steps, str(experiment.folder), resume,
                          str(logs / f"seed-{seed}.log"), os.getcwd(), list(sys.path), dict(os.environ)))
                process.start()
                running[process.sentinel] = (seed, process)
                record(seed, "running")
                print(f"seed {seed}: {'resuming' if resume else 'started'} (process {process.pid})", flush=True)
            for sentinel in wait(list(running)):
                seed, process = running.pop(sentinel)
                process.join()
                statuses[seed] = _status(process.exitcode)
                record(seed, statuses[seed])
                where = experiment.entry(seed)["run"]
                print(f"seed {seed}: {statuses[seed]}" + (f", {experiment.folder / where}" if where else "")
                      + ("" if statuses[seed] == "done" else f"; see {logs / f'seed-{seed}.log'}"), flush=True)
    except BaseException as err:  # Ctrl-C reaches every process of the group: let the seeds write notes, then record
        for seed, process in running.values():
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join()
            statuses[seed] = "interrupted"
            record(seed, "interrupted")
        err.add_note(f"thorndike: the experiment {experiment.folder} stopped ({len(running)} seed(s) interrupted); go "
                     f"on with `thorndike train --resume {experiment.folder}`")
        raise
    return statuses


def start_experiment(make: dict[str, Any], steps: int, seeds: list[int], workers: int | None = None,
                     run_root: str | Path = "runs") -> tuple[Experiment, dict[int, str]]:
    """Create the experiment folder and train every seed. ``make`` holds ``algo``, ``env`` and optionally
    ``config`` (a file or shipped name), ``env_kwargs``, ``wrappers`` and ``fields`` (config fields and run
    options, as ``th.make`` takes them)."""
    make = {"algo": make["algo"], "env": make["env"], "config": None, "env_kwargs": {}, "wrappers": [], "fields": {},
            **make}
    if make["config"] is not None and Path(make["config"]).is_file():
        make["config"] = str(Path(make["config"]).resolve())  # the seeds may be resumed from another folder
    experiment = Experiment.create(make, steps, seeds, run_root)
    print(f"experiment: {experiment.folder} ({len(seeds)} seeds, {_workers(workers, len(seeds))} at once)")
    return experiment, run_seeds(experiment, [(s, None) for s in seeds], _workers(workers, len(seeds)))


def resume_experiment(folder: str | Path, steps: int | None = None, workers: int | None = None
                      ) -> tuple[Experiment, dict[int, str]]:
    """Go on with every seed that is not done (to ``steps``, when given, a larger budget extending done seeds too):
    from its newest checkpoint, or from the start when it has none."""
    experiment = Experiment(folder)
    if steps is not None:
        if steps < int(experiment.record["steps"]):
            raise ConfigError(f"--steps {steps} is below the experiment's budget ({experiment.record['steps']})")
        extend = steps > int(experiment.record["steps"])
        experiment.record["steps"] = steps
        experiment.save()
    else:
        extend = False
    jobs: list[tuple[int, str | None]] = []
    for entry in experiment.runs:
        seed, run_dir = entry["seed"], experiment.run_dir(entry["seed"])
        if entry["status"] == "done" and not extend and run_dir is not None and (run_dir / "final.pt").is_file():
            continue
        has_state = run_dir is not None and (list_checkpoints(run_dir / "checkpoints") or
                                             (run_dir / "final.pt").is_file())
        if run_dir is not None and not has_state:
            shutil.rmtree(run_dir)  # stopped before its first checkpoint: nothing there a fresh start would not rewrite
            run_dir = None
        jobs.append((seed, None if run_dir is None else str(run_dir)))
    if not jobs:
        print(f"experiment {experiment.folder}: every seed is done")
        return experiment, {}
    count = _workers(workers, len(jobs))
    print(f"experiment: {experiment.folder} (resuming {len(jobs)} of {len(experiment.runs)} seeds, {count} at once)")
    return experiment, run_seeds(experiment, jobs, count)


def _workers(workers: int | None, seeds: int) -> int:
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    return max(1, min(seeds, workers if workers is not None else available_cores()))


def make_record(algo: str, env: str, config: str | None, env_kwargs: dict[str, Any], wrappers: list[Any],
                fields: dict[str, Any]) -> dict[str, Any]:
    """What ``experiment.yaml`` keeps to make a seed again, in plain YAML."""
    from thorndike.run import _plain

    return _plain({"algo": algo, "env": env, "config": config, "env_kwargs": env_kwargs, "wrappers": wrappers,
                   "fields": fields})
