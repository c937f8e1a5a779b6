"""The run part of the lifecycle, which every algorithm has, with or without an env.

A :class:`Run` owns what makes a training run a run: the seed and the algorithm's random generator, the counters
(``global_step``, ``iteration``, ``total_steps``), the run folder with ``config.yaml``, the logger (``progress.csv``
and TensorBoard), the progress bar, the evaluation and stop schedule, periodic checkpoints and the state an exact
resume needs. It knows nothing of envs or of any algorithm's config: what it needs from its owner it asks through
:class:`RunOwner` (the full state for a checkpoint, an evaluation, the episode columns of the log, the pictures to
draw), so an algorithm that learns from a dataset (BC), from preference pairs (DPO) or from self-play (AlphaZero)
gets checkpoints, resume, logs and the CLI the same way as one that steps envs.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import torch
import yaml

from thorndike.callbacks import Callbacks
from thorndike.config import RunOptions
from thorndike.core.checkpoint import (
    CheckpointError,
    checkpoint_path,
    list_checkpoints,
    load_latest_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    write_atomically,
)
from thorndike.core.logger import Logger
from thorndike.core.seeding import seed_everything

__all__ = ["Run", "RunOwner", "Session", "identity_mismatch", "resolve_device", "resume_state", "run_identity"]


def resolve_device(name: str) -> torch.device:
    """The torch device of ``RunOptions.device``; "cuda" on a machine or torch build without CUDA is one clear
    error, not a traceback from deep inside the first rollout."""
    from thorndike.config import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = f"torch {torch.__version__}" + (" (a CPU-only build)" if torch.version.cuda is None else "")
            raise ConfigError(f"device={name!r} but CUDA is not available here ({build}); use device='cpu', or "
                              "device='auto' to take a GPU only when there is one")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device={name!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def check_run_root(run_root: str) -> None:
    """Refuse, at construction rather than when the first file is written, a ``run_root`` that is a file or lies in
    a folder this process cannot write to."""
    from thorndike.config import ConfigError

    path = Path(run_root)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"invalid config: run_root={run_root!r} is a file, not a folder; give a folder for the runs")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"invalid config: run_root={run_root!r} cannot be written here ({existing} is not writable)"
                          "; give a folder you can write to")


class RunOwner(Protocol):
    """What a run asks of the algorithm that owns it."""

    name: str

    def state_dict(self) -> dict[str, Any]: ...

    def evaluate(self, episodes: int) -> Any: ...  # anything with a float ``mean``

    def episode_columns(self) -> dict[str, float]: ...

    def write_pictures(self, run_dir: Path) -> list[Path]: ...


class Run:
    """Seed, generator, counters, run folder, logger, progress bar, evaluation schedule and checkpoints of a run.

    ``label`` names the run in its folder (``runs/<algo>-<label>-<seed>-<time>``) and its progress bar (the env's
    name, or the data's); ``record`` is what ``config.yaml`` holds besides the seed and options.
    """

    def __init__(self, algo: str, label: str, seed: int, options: RunOptions, device: torch.device,
                 record: dict[str, Any]) -> None:
        self.algo, self.label, self.seed, self.options, self.device = algo, label, seed, options, device
        self.record = record
        check_run_root(options.run_root)
        self.generator = seed_everything(seed, device)
        self.global_step = 0
        self.iteration = 0
        self.total_steps: int | None = None
        self.last_checkpoint_step = 0
        self.run_dir: Path | None = None
        self.last_checkpoint: Path | None = None
        # The callbacks of the current learn call (Agent.learn sets them) and, after a load, the callback states
        # the checkpoint held, given to those callbacks when the next session opens.
        self.callbacks = Callbacks()
        self.saved_callback_states: dict[str, Any] = {}

    # ---- state ----------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"global_step": self.global_step, "iteration": self.iteration, "total_steps": self.total_steps,
                "last_checkpoint_step": self.last_checkpoint_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.global_step = state["global_step"]
        self.iteration = state["iteration"]
        self.total_steps = state["total_steps"]
        self.last_checkpoint_step = state["last_checkpoint_step"]

    # ---- the folder -----------------------------------------------------------------------------------------

    def _new_run_dir(self) -> Path:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        parts = [self.algo, self.label, str(self.seed), stamp] if self.label else [self.algo, str(self.seed), stamp]
        base = Path(self.options.run_root) / "-".join(parts).replace("/", "_")
        for attempt in range(1000):
            run_dir = base if attempt == 0 else base.with_name(f"{base.name}-{attempt}")
            try:  # two runs started in the same microsecond get distinct folders, not a FileExistsError
                run_dir.mkdir(parents=True, exist_ok=False)
                return run_dir
            except FileExistsError:
                continue
        raise FileExistsError(f"could not create a new run folder next to {base}")

    def write_config(self) -> None:
        assert self.run_dir is not None
        import dataclasses

        text = yaml.safe_dump({"algo": self.algo, **_plain(self.record), "seed": self.seed,
                               "options": _plain(dataclasses.asdict(self.options))}, sort_keys=False)
        write_atomically(self.run_dir / "config.yaml", text.encode())

    def checkpoint(self, state: dict[str, Any]) -> Path:
        """Write ``state`` as the checkpoint of this step into ``run_dir/checkpoints`` and prune old ones."""
        assert self.run_dir is not None
        folder = self.run_dir / "checkpoints"
        self.last_checkpoint = save_checkpoint(state, checkpoint_path(folder, self.global_step))
        prune_checkpoints(folder, self.options.keep_checkpoints)
        return self.last_checkpoint

    def steps_this_iteration(self, every: int) -> int:
        """Steps until the next log row, every ``every`` steps and never past ``total_steps``: for learners that log
        every so many single steps rather than once per rollout."""
        assert self.total_steps is not None, "call inside learn(), after session() has set total_steps"
        return min(every, self.total_steps - self.global_step)

    # ---- the session ----------------------------------------------------------------------------------------

    @contextmanager
    def session(self, total_steps: int, owner: RunOwner) -> Iterator[Session]:
        """Open (or reopen, on resume) the run folder; on a clean exit write ``final.pt`` and the pictures. An error
        or interrupt leaves the last checkpoint as it was and says how to resume."""
        if not isinstance(total_steps, int) or isinstance(total_steps, bool) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive int, got {total_steps!r}")
        resuming = self.run_dir is not None and self.total_steps is not None
        self.callbacks.check(self.options.eval_every)
        if self.saved_callback_states:
            self.callbacks.load_state_dict(self.saved_callback_states)
            self.saved_callback_states = {}
        if not resuming:
            self.run_dir = self._new_run_dir()
            self.write_config()
        self.total_steps = total_steps
        logger = Logger(self.run_dir, resume_step=self.global_step if resuming else None,
                        tensorboard=self.options.tensorboard)
        session = Session(self, owner, logger)
        try:
            yield session
        except BaseException as err:
            if self.last_checkpoint is not None:
                err.add_note(f"thorndike: training stopped at step {self.global_step}; the last checkpoint is "
                             f"{self.last_checkpoint}; resume with `thorndike train --resume {self.run_dir}`")
            else:
                err.add_note(f"thorndike: training stopped at step {self.global_step}, before the first checkpoint of "
                             f"{self.run_dir}, so there is nothing to resume: start the run again")
            raise
        finally:
            session.close()
        try:
            save_checkpoint(owner.state_dict(), self.run_dir / "final.pt")
        except OSError as err:  # a full disk at the very end: the run is done up to its last checkpoint
            err.add_note(f"thorndike: the run reached step {self.global_step} but final.pt could not be written to "
                         f"{self.run_dir}" + (f"; the last checkpoint is {self.last_checkpoint}; free space and "
                                              f"resume with `thorndike train --resume {self.run_dir}`"
                                              if self.last_checkpoint is not None else ""))
            raise
        if self.options.pictures:
            owner.write_pictures(self.run_dir)


class Session:
    """Per-iteration bookkeeping of a ``learn`` call: log row, progress bar, evaluation, checkpoint, stop."""

    def __init__(self, run: Run, owner: RunOwner, logger: Logger) -> None:
        self.run, self.owner, self.logger = run, owner, logger
        self.callbacks = run.callbacks
        options = run.options
        self.stopped = False
        self.start_time = time.perf_counter()
        self.start_step = run.global_step
        self.checkpoint_every = options.checkpoint_every or max(run.total_steps // 10, 1)
        self.last_eval: float | None = None
        # Evaluations fall at the first iteration boundary at or past each multiple of eval_every, counted from step
        # 0, so a resumed run evaluates at the same steps as an uninterrupted one.
        every = options.eval_every
        self._next_eval = (run.global_step // every + 1) * every if every else None
        self.bar = None
        if options.progress:
            from tqdm.auto import tqdm

            desc = f"{run.algo} {run.label}".strip()
            self.bar = tqdm(total=run.total_steps, initial=run.global_step, unit="step", dynamic_ncols=True,
                            desc=desc)

    def running(self) -> bool:
        return not self.stopped and self.run.global_step < self.run.total_steps

    def log(self, stats: dict[str, float]) -> None:
        """End of an iteration: evaluate if due, write the row, update the bar, checkpoint if due."""
        run, owner, options = self.run, self.owner, self.run.options
        run.iteration += 1
        row: dict[str, Any] = {"iteration": run.iteration, **owner.episode_columns()}
        eval_mean = math.nan
        if self._next_eval is not None and run.global_step >= self._next_eval:
            self._next_eval = (run.global_step // options.eval_every + 1) * options.eval_every
            result = owner.evaluate(options.eval_episodes)
            eval_mean = result.mean
            self.last_eval = eval_mean
            if options.stop_return is not None and eval_mean >= options.stop_return:
                self.stopped = True
            if self.callbacks.evaluation(owner, result):
                self.stopped = True
        row["eval_mean"] = eval_mean
        row.update(stats)
        elapsed = time.perf_counter() - self.start_time
        row["time/elapsed_s"] = elapsed
        row["time/steps_per_s"] = (run.global_step - self.start_step) / max(elapsed, 1e-9)
        self.logger.log(run.global_step, row)
        if self.callbacks.iteration(owner, {"step": run.global_step, **row}):
            self.stopped = True
        if self.bar is not None:
            # learn(N) stops at the first iteration boundary at or past N: the bar stays within its total
            self.bar.n = min(run.global_step, run.total_steps)
            postfix = {"steps/s": f"{row['time/steps_per_s']:.0f}"}
            if "return_mean" in row:
                postfix["return"] = f"{row['return_mean']:.1f}"
            if self.last_eval is not None:
                postfix["eval"] = f"{self.last_eval:.1f}"
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.refresh()
        if run.global_step - run.last_checkpoint_step >= self.checkpoint_every:
            run.last_checkpoint_step = run.global_step
            self.callbacks.checkpoint(owner, run.checkpoint(owner.state_dict()))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.logger.close()


def _plain(value: Any) -> Any:
    """Tuples to lists, so config.yaml stays plain YAML."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# What a checkpoint must share with its run's config.yaml to be resumed or loaded as that run.
IDENTITY = ("algo", "env", "env_kwargs", "wrappers", "seed", "config")


def run_identity(run_dir: str | Path) -> dict[str, Any]:
    """The run's algorithm, env (with kwargs and wrappers), seed and config, as its ``config.yaml`` records them."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        if Path(run_dir).is_dir() and not (Path(run_dir) / "checkpoints").exists():
            # what a run killed in its first moments leaves: the folder, before config.yaml was written into it
            raise FileNotFoundError(f"{run_dir} has no config.yaml: it is not a run folder, or its run was stopped "
                                    "before it began (no checkpoint yet, so there is nothing to resume: start the "
                                    "run again)")
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.yaml)")
    try:
        record = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML ({err}); the run cannot be identified") from None
    if not isinstance(record, dict) or "algo" not in record:
        raise ValueError(f"{path} does not describe a run (no 'algo' entry)")
    return {key: record.get(key) for key in IDENTITY}


def identity_mismatch(state: dict[str, Any], identity: dict[str, Any]) -> str | None:
    """How a checkpoint differs from a run's identity (``None``: it is this run's). Values are compared as
    ``config.yaml`` writes them."""
    for key in IDENTITY:
        theirs = yaml.safe_load(yaml.safe_dump(_plain(state.get(key))))
        if theirs != identity[key]:
            if key == "config" and isinstance(theirs, dict) and isinstance(identity[key], dict):
                fields = sorted(k for k in theirs.keys() | identity[key].keys()
                                if theirs.get(k) != identity[key].get(k))
                return f"its config differs in {', '.join(fields)}"
            return f"its {key} is {theirs!r}, the run's is {identity[key]!r}"
    return None


def resume_state(run_dir: str | Path) -> tuple[Path, dict[str, Any]]:
    """The newest valid state of a run that belongs to it (``final.pt`` when the run finished, else its newest
    checkpoint): damaged files and checkpoints of another run (another algorithm, env, seed or config than
    ``config.yaml`` records) are reported by name and skipped."""
    identity = run_identity(run_dir)
    folder = Path(run_dir) / "checkpoints"
    # A finished run's final.pt is its newest state: resuming it with a larger budget extends the run.
    candidates = list_checkpoints(folder) + [p for p in [Path(run_dir) / "final.pt"] if p.is_file()]
    if not candidates:
        raise CheckpointError(f"{run_dir} has no checkpoint yet: it stopped before its first one, so there is nothing "
                              "to resume; start the run again (thorndike train ...)")
    return load_latest_checkpoint(folder, lambda state: identity_mismatch(state, identity), candidates)
