"""The contract every registered algorithm keeps, run on its tiny example (``thorndike.registry.EXAMPLES``): it
learns and writes its run folder, save -> load acts the same, a SIGKILLed run resumes exactly, a seed fixes the
run, bad config values are refused by name, and unsupported spaces are refused naming the algorithms that fit.

A new algorithm gets all of this by registering itself and its example."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import types
import typing
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import thorndike as th
from thorndike.config import ConfigError, build_config
from thorndike.core.checkpoint import list_checkpoints, load_checkpoint
from thorndike.core.diagnostics import EnvOutputError, NonFiniteError
from thorndike.registry import ALGORITHMS, EXAMPLES, algorithms_supporting, example, get_algorithm

NAMES = sorted(ALGORITHMS)
# The algorithms that take no env (the LM trainers): their example's env is None. They keep the same contract, with
# greedy completions where the others act, and "passing an env is refused" where the others refuse spaces.
ENVLESS = [name for name in NAMES if EXAMPLES[name].env is None]
ENV_NAMES = [name for name in NAMES if name not in ENVLESS]
QUIET = dict(progress=False, tensorboard=False, pictures=False)

algorithm_names = pytest.mark.parametrize("name", NAMES, ids=NAMES)
env_algorithm_names = pytest.mark.parametrize("name", ENV_NAMES, ids=ENV_NAMES)


def make_example(name: str, run_root: Path, seed: int = 0, **options: Any) -> Any:
    """The algorithm's example; ``options`` are run options or config fields (these replace the example's)."""
    ex = example(name)
    return th.make(name, env=ex.env, seed=seed, run_root=str(run_root), **{**ex.fields, **QUIET, **options})


def learning_rows(run_dir: Path) -> list[dict[str, str]]:
    """progress.csv without the wall-clock columns, which differ between any two runs."""
    with open(run_dir / "progress.csv", newline="") as f:
        return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in csv.DictReader(f)]


def final_components(run_dir: Path) -> dict[str, Any]:
    return load_checkpoint(run_dir / "final.pt")["components"]


def same_state(a: Any, b: Any) -> bool:
    """Whether two checkpoint components are equal in every leaf: tensors bit for bit, other values by ==."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(
            same_state(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) or isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):  # NumPy's random state
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    return a == b


def test_same_state_compares_every_leaf() -> None:
    state = {"w": torch.zeros(3), "opt": {"step": 4, "buf": [torch.ones(2), None]}}
    assert same_state(state, {"w": torch.zeros(3), "opt": {"step": 4, "buf": [torch.ones(2), None]}})
    assert not same_state(state, {"w": torch.zeros(3), "opt": {"step": 5, "buf": [torch.ones(2), None]}})
    assert not same_state(state, {"w": torch.tensor([0.0, 0.0, 1e-9]), "opt": state["opt"]})
    assert not same_state(state, {"w": torch.zeros(3), "opt": {"step": 4, "buf": [torch.ones(2)]}})


# ---- the registry --------------------------------------------------------------------------------------------------


def test_every_registered_algorithm_has_an_example_and_nothing_else_does() -> None:
    assert sorted(EXAMPLES) == NAMES
    for name in NAMES:
        ex = example(name)
        assert (isinstance(ex.env, str) or (ex.env is None and get_algorithm(name).action_spaces == ())) \
            and ex.steps >= 4
        with pytest.raises(ValueError):  # no typo hides in the example's fields
            th.make(name, env=ex.env, **ex.fields, **QUIET, no_such_field=1)


def test_example_of_an_algorithm_without_one_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(EXAMPLES, "ppo")
    with pytest.raises(KeyError, match="'ppo' has no example run; add one to thorndike.registry.EXAMPLES"):
        example("ppo")
    with pytest.raises(ValueError, match="unknown algorithm 'ppoo'"):
        example("ppoo")


# ---- learning, saving, loading -------------------------------------------------------------------------------------


@algorithm_names
def test_tiny_learn_writes_the_run_folder_and_evaluates(tmp_path: Path, name: str) -> None:
    ex = example(name)
    agent = make_example(name, tmp_path).learn(ex.steps)
    assert agent.global_step >= ex.steps
    assert {"final.pt", "config.yaml", "progress.csv"} <= {p.name for p in agent.run_dir.iterdir()}
    rows = learning_rows(agent.run_dir)
    assert len(rows) >= 2 and int(rows[-1]["step"]) == agent.global_step
    result = agent.evaluate(episodes=2)
    assert len(result.returns) == len(result.lengths) == 2
    assert all(math.isfinite(r) for r in result.returns) and math.isfinite(result.mean) and math.isfinite(result.std)


def observation_batch(env: str) -> torch.Tensor:
    return th.envs.make(env, n_envs=8, seed=123).reset(seed=123)


def probe_prompts(agent: Any, n: int = 8) -> list[str]:
    """A fixed batch of the agent's task's prompts (the env-less algorithms' observation batch)."""
    import random

    return [e.prompt for e in agent.lm.task.sample_prompts(n, random.Random(123), split="test")]


@algorithm_names
def test_save_then_load_acts_the_same(tmp_path: Path, name: str) -> None:
    ex = example(name)
    agent = make_example(name, tmp_path).learn(ex.steps)
    loaded = th.load(agent.save(tmp_path / "agent.pt"))
    assert type(loaded) is type(agent) and loaded.global_step == agent.global_step
    if ex.env is None:  # an LM: the same greedy completions, and the same samples from the same seed
        prompts = probe_prompts(agent)
        completions = agent.complete(prompts, greedy=True)
        assert len(completions) == 8 and all(isinstance(c, str) for c in completions)
        assert loaded.complete(prompts, greedy=True) == completions
        assert loaded.complete(prompts, greedy=False, seed=5) == agent.complete(prompts, greedy=False, seed=5)
        assert same_state(loaded.state_dict()["components"], agent.state_dict()["components"])
        return
    batch = observation_batch(ex.env)
    actions = agent.act(batch, deterministic=True)
    assert isinstance(actions, torch.Tensor) and len(actions) == 8
    assert torch.equal(loaded.act(batch, deterministic=True), actions)
    numpy_actions = loaded.act(batch.cpu().numpy(), deterministic=True)
    assert isinstance(numpy_actions, np.ndarray)
    np.testing.assert_array_equal(numpy_actions, actions.cpu().numpy())
    single = batch[0].cpu().numpy()
    np.testing.assert_array_equal(loaded.act(single, deterministic=True), agent.act(single, deterministic=True))
    assert same_state(loaded.state_dict()["components"], agent.state_dict()["components"])


# ---- exact resume after SIGKILL ------------------------------------------------------------------------------------

# Runs the example in a fresh interpreter that SIGKILLs itself right after the 2nd periodic checkpoint is renamed
# into place ("after"), or while writing the 3rd, its temporary file written but not yet renamed ("during"): the
# checkpoint writer's os.replace is wrapped, so the kill lands at the same step every time with no hook in the
# library.
KILLED_RUN = """
import os
import signal
import thorndike as th

real_replace = os.replace
checkpoints_written = 0

def replace_then_die(src, dst, *args, **kwargs):
    global checkpoints_written
    into_checkpoints = os.path.basename(os.path.dirname(os.fspath(dst))) == "checkpoints"
    if into_checkpoints and {when!r} == "during" and checkpoints_written == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst, *args, **kwargs)
    if into_checkpoints:
        checkpoints_written += 1
        if {when!r} == "after" and checkpoints_written == 2:
            os.kill(os.getpid(), signal.SIGKILL)

os.replace = replace_then_die
agent = th.make({name!r}, env={env!r}, seed=0, run_root={run_root!r}, **{fields!r}, **{options!r})
agent.learn({steps!r})
"""


@pytest.mark.parametrize("when", ["after", "during"])
@algorithm_names
def test_a_sigkilled_run_resumes_exactly(tmp_path: Path, name: str, when: str) -> None:
    ex = example(name)
    # The same run options for both runs: checkpoint_every changes when checkpoints are written and nothing else.
    options = dict(checkpoint_every=ex.steps // 4, keep_checkpoints=0)
    reference = make_example(name, tmp_path / "reference", **options).learn(ex.steps)
    assert len(list_checkpoints(reference.run_dir / "checkpoints")) >= 3, "the example's budget must span 3"

    script = KILLED_RUN.format(name=name, env=ex.env, run_root=str(tmp_path / "killed"), fields=ex.fields,
                               options={**QUIET, **options}, steps=ex.steps, when=when)
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                            timeout=120)
    assert killed.returncode == -9, killed.stderr
    (run_dir,) = (tmp_path / "killed").iterdir()
    assert not (run_dir / "final.pt").exists()
    checkpoints = list_checkpoints(run_dir / "checkpoints")
    assert len(checkpoints) == 2
    if when == "during":  # the 3rd checkpoint's temporary file is there, never renamed: resume must not use it
        assert list((run_dir / "checkpoints").glob(".step-*.tmp-*"))

    agent = th.resume(run_dir, progress=False)
    resumed_at = agent.global_step
    assert resumed_at == load_checkpoint(checkpoints[-1])["counters"]["global_step"]
    assert 0 < resumed_at < ex.steps
    agent.learn(agent.total_steps)

    assert same_state(final_components(run_dir), final_components(reference.run_dir))
    # every random state too (Python, NumPy, torch, the algorithm's generator): the runs go on identically
    rng, reference_rng = (load_checkpoint(folder / "final.pt")["rng"] for folder in (run_dir, reference.run_dir))
    assert same_state(rng, reference_rng)
    resumed_rows, reference_rows = learning_rows(run_dir), learning_rows(reference.run_dir)
    assert any(int(row["step"]) > resumed_at for row in resumed_rows), "the resumed run must have logged rows"
    assert resumed_rows == reference_rows


# A resume in a fresh interpreter that SIGKILLs itself while it rewrites progress.csv (before the cut file is renamed
# into place: "progress") or right after the first checkpoint it writes ("checkpoint").
KILLED_RESUME = """
import os
import signal
import thorndike as th

real_replace = os.replace

def replace_then_die(src, dst, *args, **kwargs):
    if {when!r} == "progress" and os.path.basename(os.fspath(dst)) == "progress.csv":
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst, *args, **kwargs)
    if {when!r} == "checkpoint" and os.path.basename(os.path.dirname(os.fspath(dst))) == "checkpoints":
        os.kill(os.getpid(), signal.SIGKILL)

os.replace = replace_then_die
agent = th.resume({run_dir!r}, progress=False)
agent.learn(agent.total_steps)
"""


def run_killed(script: str) -> None:
    """Run ``script`` (one of the killing scripts above) in a forked copy of this process, which must end by
    SIGKILL: the same as a fresh interpreter, without paying for one (torch and thorndike are imported already)."""
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        try:
            exec(textwrap.dedent(script), {"__name__": "__killed__"})  # noqa: S102  (our own script)
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"the child ended with {status}"


@algorithm_names
def test_a_run_killed_during_its_resume_resumes_exactly(tmp_path: Path, name: str) -> None:
    # Killed after its 2nd checkpoint, then killed again while resuming (rewriting progress.csv), then again just
    # after the resumed run's first checkpoint, with only the 2 newest checkpoints kept: resumed a last time, it ends
    # bit for bit like an uninterrupted run (components, random states, every row of progress.csv).
    ex = example(name)
    options = dict(checkpoint_every=ex.steps // 4, keep_checkpoints=2)
    reference = make_example(name, tmp_path / "reference", **options).learn(ex.steps)
    run_killed(KILLED_RUN.format(name=name, env=ex.env, run_root=str(tmp_path / "killed"), fields=ex.fields,
                                 options={**QUIET, **options}, steps=ex.steps, when="after"))
    (run_dir,) = (tmp_path / "killed").iterdir()
    rows_before = learning_rows(run_dir)
    run_killed(KILLED_RESUME.format(run_dir=str(run_dir), when="progress"))
    assert learning_rows(run_dir) == rows_before  # the old file, whole: the cut one was never renamed into place
    newest = list_checkpoints(run_dir / "checkpoints")[-1]
    run_killed(KILLED_RESUME.format(run_dir=str(run_dir), when="checkpoint"))
    # a new checkpoint is in place; the kill came before pruning, so one more than kept is left
    assert list_checkpoints(run_dir / "checkpoints")[-1] != newest

    agent = th.resume(run_dir, progress=False)
    assert 0 < agent.global_step < ex.steps
    agent.learn(agent.total_steps)
    assert same_state(final_components(run_dir), final_components(reference.run_dir))
    rng, reference_rng = (load_checkpoint(folder / "final.pt")["rng"] for folder in (run_dir, reference.run_dir))
    assert same_state(rng, reference_rng)
    assert learning_rows(run_dir) == learning_rows(reference.run_dir)


# ---- callbacks -----------------------------------------------------------------------------------------------------


class Recorder(th.callbacks.Callback):
    """Counts the lifecycle's hook calls; raises KeyboardInterrupt (a stop like Ctrl-C) after the ``stop_after``-th
    checkpoint."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after, self.rows, self.evaluations, self.checkpoints = stop_after, [], [], []

    def on_iteration(self, agent: Any, row: dict[str, Any]) -> None:
        self.rows.append(row["step"])

    def on_evaluation(self, agent: Any, result: Any) -> None:
        self.evaluations.append((agent.global_step, result.mean))

    def on_checkpoint(self, agent: Any, path: Path) -> None:
        self.checkpoints.append(path)
        if len(self.checkpoints) == self.stop_after:
            raise KeyboardInterrupt


@algorithm_names
def test_callbacks_are_called_and_a_resumed_run_stops_where_an_uninterrupted_one_does(tmp_path: Path,
                                                                                      name: str) -> None:
    ex = example(name)
    options = dict(eval_every=ex.steps // 8, eval_episodes=2, checkpoint_every=ex.steps // 8, keep_checkpoints=0)
    recorder, stop, best = Recorder(), th.callbacks.StopOnNoImprovement(patience=3), th.callbacks.SaveBest()
    reference = make_example(name, tmp_path / "reference", **options).learn(ex.steps, callbacks=[stop, best, recorder])
    rows = learning_rows(reference.run_dir)
    assert recorder.rows == [int(row["step"]) for row in rows]
    assert [step for step, _ in recorder.evaluations] == [int(r["step"]) for r in rows if r["eval_mean"] != "nan"]
    assert recorder.checkpoints == list_checkpoints(reference.run_dir / "checkpoints")
    assert len(recorder.evaluations) >= 4, "the example must evaluate often enough for the patience to matter"
    top = max(mean for _, mean in recorder.evaluations)
    assert best.best_step == next(step for step, mean in recorder.evaluations if mean == top)
    assert th.load(reference.run_dir / "best.pt").global_step == best.best_step

    interrupted = make_example(name, tmp_path / "interrupted", **options)
    with pytest.raises(KeyboardInterrupt):
        interrupted.learn(ex.steps, callbacks=[th.callbacks.StopOnNoImprovement(patience=3),
                                               th.callbacks.SaveBest(), Recorder(stop_after=2)])
    agent = th.resume(interrupted.run_dir, progress=False)
    resumed = [th.callbacks.StopOnNoImprovement(patience=3), th.callbacks.SaveBest()]
    agent.learn(agent.total_steps, callbacks=resumed)
    assert agent.global_step == reference.global_step
    assert [c.state_dict() for c in resumed] == [stop.state_dict(), best.state_dict()]
    assert learning_rows(interrupted.run_dir) == rows


# ---- determinism ---------------------------------------------------------------------------------------------------


@algorithm_names
def test_a_seed_fixes_the_run(tmp_path: Path, name: str) -> None:
    ex = example(name)
    first = make_example(name, tmp_path / "first", seed=1).learn(ex.steps)
    again = make_example(name, tmp_path / "again", seed=1).learn(ex.steps)
    other = make_example(name, tmp_path / "other", seed=2).learn(ex.steps)
    assert same_state(final_components(first.run_dir), final_components(again.run_dir))
    assert learning_rows(first.run_dir) == learning_rows(again.run_dir)
    assert not same_state(final_components(first.run_dir), final_components(other.run_dir))


# ---- bad config values ---------------------------------------------------------------------------------------------

OUT_OF_RANGE = (-1, 0, 10**12, -(10**12))


def field_kind(annotation: Any) -> Any:
    """The field's type with ``| None`` removed (``float | None`` probes as ``float``)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    return annotation


def bad_values(annotation: Any) -> tuple[list[Any], list[Any]]:
    """(values that must be refused, out-of-range probes that may be accepted) for a field of this type."""
    kind = field_kind(annotation)
    if kind is bool:
        return ["maybe"], []
    if kind is int:
        return ["not-a-number"], list(OUT_OF_RANGE)
    if kind is float:
        return ["not-a-number", float("nan")], list(OUT_OF_RANGE)
    if kind is str:
        return [[1, 2], {"a": 1}], []
    if typing.get_origin(kind) is tuple:
        return ["not-a-number"], []
    raise AssertionError(f"no bad values for a field of type {annotation}; teach the contract about it")


@algorithm_names
def test_bad_config_values_name_the_field(name: str) -> None:
    config_cls = get_algorithm(name).Config
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        refused, probes = bad_values(hints[field.name])
        for bad in refused:
            with pytest.raises(ConfigError, match=re.escape(field.name)):
                build_config(config_cls, {field.name: bad})
                pytest.fail(f"{field.name}={bad!r} was accepted")
        for probe in probes:
            try:
                build_config(config_cls, {field.name: probe})
            except ConfigError as err:
                assert field.name in str(err), f"{field.name}={probe}: {err}"


@algorithm_names
def test_a_float_that_is_not_finite_is_refused_even_in_a_config_built_by_hand(tmp_path: Path, name: str) -> None:
    # build_config refuses NaN and inf while coercing; a Config constructed directly, and handed to the class, must
    # be refused too, by the field's name (q_init, log_std_init and the like have no range check to catch NaN).
    cls = get_algorithm(name)
    hints = typing.get_type_hints(cls.Config)
    floats = [f.name for f in dataclasses.fields(cls.Config) if field_kind(hints[f.name]) is float]
    assert floats, f"{name} has no float field"
    for field in floats:
        for bad in (math.nan, math.inf, -math.inf):
            with pytest.raises(ConfigError, match=re.escape(field)):
                cls.Config(**{field: bad})
    with pytest.raises(ConfigError, match="stop_return"):
        th.config.RunOptions(stop_return=math.nan)


def largest_accepted(field: dataclasses.Field) -> int:
    return field.metadata.get("at_most", th.config.MAX_COUNT)


@algorithm_names
def test_every_count_at_its_largest_is_refused_by_name_or_runs(tmp_path: Path, name: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # A count one above its bound is refused naming the field and the bound; at the bound itself it is refused by
    # the memory estimate (naming the field), or it is built and learns an iteration in moments: never a raw
    # allocation failure, never a run that hangs. The machine is taken to have 16 GiB, so the outcome is the same
    # on every machine.
    from thorndike.core import resources

    monkeypatch.setattr(resources, "memory_budget", lambda device="cpu": (8 * 2**30, 16 * 2**30))
    hints = typing.get_type_hints(get_algorithm(name).Config)
    counts = [f for f in dataclasses.fields(get_algorithm(name).Config) if field_kind(hints[f.name]) is int
              or typing.get_origin(hints[f.name]) is tuple]
    assert counts
    make_example(name, tmp_path)  # the first one imports the algorithm's modules: not what is timed
    for field in counts:
        tuple_field = typing.get_origin(hints[field.name]) is tuple
        top = largest_accepted(field)
        over = (top + 1,) if tuple_field else top + 1
        with pytest.raises(ConfigError, match=rf"{field.name}=.*at most {top:,}"):
            make_example(name, tmp_path, **{field.name: over})
        started = time.perf_counter()
        try:
            agent = make_example(name, tmp_path, **{field.name: (top,) if tuple_field else top})
        except ConfigError as err:
            assert field.name in str(err), err
        else:
            agent.learn(1)
        assert time.perf_counter() - started < 5, f"{field.name}={top} took {time.perf_counter() - started:.1f} s"


@algorithm_names
def test_an_unknown_field_is_named_with_close_matches(name: str) -> None:
    ex = example(name)
    with pytest.raises(ConfigError, match="unknown config field 'learning_rat'"):
        th.make(name, env=ex.env, learning_rat=0.1, **QUIET)
    real = dataclasses.fields(get_algorithm(name).Config)[0].name
    with pytest.raises(ConfigError, match=f"unknown config field '{real}x'.*Did you mean {real}"):
        th.make(name, env=ex.env, **{f"{real}x": 1}, **QUIET)


# ---- unsupported spaces --------------------------------------------------------------------------------------------


class CoinFlips(gym.Env):
    """A one-step env with MultiBinary actions, which no thorndike algorithm supports."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.MultiBinary(3)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.zeros(2, np.float32), 0.0, True, False, {}


# Box obs / Discrete actions, Box actions, Discrete obs and actions, and actions nobody supports.
PROBE_ENVS = {"CartPole-v1": "CartPole-v1", "Pendulum-v1": "Pendulum-v1", "FrozenLake-v1": "FrozenLake-v1",
              "CoinFlips": CoinFlips}


def spaces_of(env: Any) -> tuple[gym.Space, gym.Space]:
    envs = th.envs.make(env, n_envs=1)
    return envs.single_observation_space, envs.single_action_space


def supports(name: str, env: Any) -> bool:
    try:
        get_algorithm(name).check_spaces(*spaces_of(env))
    except ValueError:
        return False
    return True


def test_algorithms_supporting_asks_each_class() -> None:
    # Decided by both spaces, not by the action space alone: q_learning takes Discrete actions but not CartPole's
    # Box observations; linear_q's check accepts both Discrete and flat Box observations; ppo one-hot encodes
    # Discrete observations.
    cartpole, frozen_lake = algorithms_supporting(*spaces_of("CartPole-v1")), algorithms_supporting(
        *spaces_of("FrozenLake-v1"))
    assert {"ppo", "linear_q"} <= set(cartpole) and "q_learning" not in cartpole
    assert {"q_learning", "cem", "linear_q", "ppo"} <= set(frozen_lake)
    assert "ppo" in algorithms_supporting(*spaces_of("Pendulum-v1"))
    assert "linear_q" not in algorithms_supporting(*spaces_of("Pendulum-v1"))
    assert algorithms_supporting(*spaces_of(CoinFlips)) == []
    assert cartpole == sorted(cartpole)


@pytest.mark.parametrize("name", ENVLESS, ids=ENVLESS)
def test_an_algorithm_without_env_refuses_one(tmp_path: Path, name: str) -> None:
    # For an algorithm that takes no env, "unsupported spaces" is any env: passing one is one clear error, by name.
    assert not any(supports(name, env) for env in PROBE_ENVS.values())
    for env in ("CartPole-v1", CoinFlips):
        with pytest.raises(ValueError, match=rf"^{name} learns from .*not from an env: make it without env="):
            th.make(name, env=env, run_root=str(tmp_path), **QUIET)


@env_algorithm_names
def test_unsupported_spaces_name_the_algorithms_that_support_them(tmp_path: Path, name: str) -> None:
    unsupported = [probe for probe, env in PROBE_ENVS.items() if not supports(name, env)]
    assert unsupported, f"{name} supports every probe env, even MultiBinary actions"
    for probe in unsupported:
        env = PROBE_ENVS[probe]
        expected = [other for other in NAMES if other != name and supports(other, env)]
        with pytest.raises(ValueError) as refused:
            th.make(name, env=env, run_root=str(tmp_path), **QUIET)
        message = str(refused.value)
        assert message.startswith(name), message
        if expected:
            listed = re.search(r"algorithms that support these spaces: ([\w, ]+)$", message)
            assert listed is not None, message
            assert listed.group(1).split(", ") == expected, message
        else:
            assert message.endswith("no thorndike algorithm supports these spaces yet"), message


# ---- bad data from the env -----------------------------------------------------------------------------------------


class FaultyEnv(gym.Env):
    """A small env whose copy ``faulty_copy`` goes wrong on its ``fault_step``-th step (counted over its lifetime, so
    the same step after a resume): a NaN reward, a NaN (or out-of-range) final observation of an episode that ends
    there, or a NaN (out-of-range) observation. A copy knows its index from the seed of its first reset (the agent's
    seed 0 plus the copy's index). Observations are Discrete(8) states or Box(3) vectors; actions Discrete(2) or, for
    the continuous learners, Box(1) in [-2, 1]; episodes last 7 steps."""

    def __init__(self, kind: str = "discrete", fault: str = "reward", fault_step: int = 60, faulty_copy: int = 1,
                 actions: str = "discrete"):
        self.kind, self.fault, self.fault_step, self.faulty_copy = kind, fault, fault_step, faulty_copy
        self.observation_space = (gym.spaces.Discrete(8) if kind == "discrete"
                                  else gym.spaces.Box(-1, 1, (3,), np.float32))
        self.action_space = (gym.spaces.Discrete(2) if actions == "discrete"
                             else gym.spaces.Box(-2, 1, (1,), np.float32))
        self.copy: int | None = None
        self.steps = self.t = 0

    def _obs(self) -> Any:
        return self.t % 8 if self.kind == "discrete" else np.array([self.t / 10, 0.0, 0.0], np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.copy = seed if self.copy is None else self.copy
        self.t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.steps += 1
        self.t += 1
        obs, reward, terminated = self._obs(), 1.0, self.t >= 7
        if self.copy == self.faulty_copy and self.steps == self.fault_step:
            bad = {"discrete": {"out_of_range": 99}}.get(self.kind, {}).get(self.fault, -1) \
                if self.kind == "discrete" else np.full(3, np.nan, np.float32)
            if self.fault == "reward":
                reward = math.nan
            elif self.fault == "final_obs":
                obs, terminated = bad, True
            elif self.fault in ("obs", "out_of_range"):
                obs, terminated = bad, False
            elif self.fault == "shape":
                obs = np.zeros(5, np.float32) if self.kind == "box" else np.array([1, 2])
            elif self.fault == "dtype":
                obs = np.array(["a", "b", "c"])
            elif self.fault == "raise":
                raise RuntimeError("the simulator crashed")
        return obs, reward, terminated, False, {}


gym.register("thorndike_test/Faulty-v0", entry_point=FaultyEnv)
FAULTY = "thorndike_test/Faulty-v0"


def faulty_kind(name: str) -> dict[str, str]:
    """The observation kind (Discrete first) and action kind of FaultyEnv the algorithm supports, as env kwargs."""
    for actions in ("discrete", "box"):
        for kind in ("discrete", "box"):
            envs = th.envs.make(FAULTY, n_envs=1, env_kwargs={"kind": kind, "actions": actions})
            try:
                get_algorithm(name).check_spaces(envs.single_observation_space, envs.single_action_space)
                return {"kind": kind, "actions": actions}
            except ValueError:
                continue
    raise AssertionError(f"{name} supports no observation and action kind of FaultyEnv")


def run_faulty(name: str, run_root: Path, kinds: dict[str, str], fault: str) -> tuple[Any, BaseException]:
    """The example on FaultyEnv, a checkpoint every iteration, learning until the fault stops it."""
    ex = example(name)
    agent = th.make(name, env=FAULTY, env_kwargs={**kinds, "fault": fault}, run_root=str(run_root),
                    checkpoint_every=1, **{**ex.fields, **QUIET})
    with pytest.raises(Exception) as stopped:
        agent.learn(ex.steps)
    return agent, stopped.value


@env_algorithm_names
def test_bad_env_data_stops_the_run_naming_step_and_copy(tmp_path: Path, name: str) -> None:
    # A NaN reward, a NaN (or out-of-range) final observation and a NaN (or out-of-range: -1 and 99) observation from
    # env copy 1 stop the run with an error naming the step and the copy, never a NaN table, a wrapped index or a NaN
    # ranked as a return; the last checkpoint, written before the fault, resumes.
    kinds = faulty_kind(name)
    kind = kinds["kind"]
    faults = ["reward", "final_obs", "obs"] + (["out_of_range"] if kind == "discrete" else [])
    for fault in faults:
        agent, err = run_faulty(name, tmp_path / fault, kinds, fault)
        state_fault = kind == "discrete" and fault != "reward"
        assert isinstance(err, EnvOutputError if state_fault else NonFiniteError), f"{fault}: {err!r}"
        found = re.search(r"at step (\d+) \(iteration \d+\), env copy (\d+)", str(err))
        assert found is not None and found.group(2) == "1", f"{fault}: {err}"
        assert {"reward": "reward", "final_obs": "final observation"}.get(fault, "observation") in str(err)
        if fault == "reward":
            resumed = th.resume(agent.run_dir, progress=False)
            assert 0 < resumed.global_step < int(found.group(1))
            floats = [t for t in _leaves(resumed.state_dict()["components"]) if t.is_floating_point()]
            assert floats and all(bool(torch.isfinite(t).all()) for t in floats if t.numel())
            assert (agent.run_dir / "progress.csv").exists()


def _leaves(state: Any) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for v in state.values() for t in _leaves(v)]
    if isinstance(state, list | tuple):
        return [t for v in state for t in _leaves(v)]
    return []


@env_algorithm_names
def test_a_failing_env_stops_the_run_naming_step_and_copy(tmp_path: Path, name: str) -> None:
    # An observation of the wrong shape, a string observation and an exception inside the env's step are one
    # EnvOutputError naming the step and the env copy (not NumPy's "all input arrays must have the same shape" or a
    # traceback from inside the env), with the run's resume hint since a checkpoint was written before.
    kinds = faulty_kind(name)
    for fault, says in [("shape", "an observation of shape"), ("dtype", "dtype <U1"),
                        ("raise", "raised RuntimeError in its step: the simulator crashed")]:
        agent, err = run_faulty(name, tmp_path / fault, kinds, fault)
        assert isinstance(err, EnvOutputError), f"{fault}: {err!r}"
        assert re.search(r"at step \d+( \(iteration \d+\))?: env copy 1 ", str(err)), f"{fault}: {err}"
        assert says in str(err), f"{fault}: {err}"
        assert any(f"resume with `thorndike train --resume {agent.run_dir}`" in note for note in err.__notes__)


def test_the_cli_reports_a_failing_env_with_the_resume_hint(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from thorndike.cli import main

    code = main(["train", "q_learning", "--env", FAULTY, "--env-kwargs", "fault=raise", "--steps", "400",
                 "--n-runs", "2", "--log-every", "50", "--checkpoint-every", "1", "--run-root", str(tmp_path),
                 "--progress", "false", "--tensorboard", "false", "--pictures", "false"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "env copy 1 raised RuntimeError in its step: the simulator crashed" in err and "at step 60" in err
    assert "thorndike train --resume" in err and "Traceback" not in err
