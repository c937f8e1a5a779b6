"""Hyperparameter tuning with Optuna, for every registered algorithm.

    thorndike tune ppo --env CartPole-v1 --trials 50 [--seeds 3] [--steps 50000] [--timeout 3600]
                       [--storage URL] [--space FILE.yaml] [--folder DIR] [any config field, fixed: --n-envs 8]

Each trial samples the search space, trains the algorithm with ``--seeds`` seeds (0, 1, ...) for ``--steps`` steps
each, evaluating every ``--eval-every`` steps, and scores the mean over seeds of a final evaluation
(``--eval-episodes`` deterministic episodes). The evaluations during training are reported to Optuna
(``trial.report``, through a callback: :class:`OptunaReport`), whose median pruner stops trials that do worse than
the median of earlier trials at the same step (after 3 finished trials, and not in the first quarter of the first
seed's budget). Seed k's evaluation at step s is reported as step
``k * steps + s``, so trials are compared seed by seed.

The study lives in ``runs/tune-<algo>-<env>/study.db`` (SQLite; ``--storage`` takes any SQLAlchemy URL) under the
study name ``tune-<algo>-<env>``: running the same command again continues the same study (``--trials N`` more
trials). A trial left running by a killed process is marked failed and its parameters queued again, so it is
tried anew. At the end the folder holds ``best.yaml`` (the best trial's config, which ``thorndike train --config``
takes), ``study.png`` (optimisation history and parameter importances) and ``trials/trial-<n>/`` (the trials' run
folders).

Search spaces are YAML files, ``thorndike/configs/tune/<algo>.yaml`` or ``--space FILE``: one entry per config
field, ``{low: L, high: H}`` (whole numbers: an int; else a float; ``log: true`` samples on a log scale, ``step``
sets a grid) or ``{choices: [...]}`` (lists stand for tuple fields such as ``hidden_sizes``); ``extends: NAME``
starts from another file of the same folder. Algorithms without a file get a space derived from their config's
defaults (:func:`default_space`). A field given on the command line is fixed and left out of the space.
"""

from __future__ import annotations

import dataclasses
import math
import typing
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from thorndike.callbacks import Callback
from thorndike.config import ConfigError, RunOptions, unknown_field_error
from thorndike.core.diagnostics import NonFiniteError

__all__ = ["OptunaReport", "default_space", "load_space", "tune"]

SPACE_DIR = Path(__file__).parent / "configs" / "tune"

# Fields that set how much is run or logged, not how the algorithm learns: never tuned by the derived space.
NOT_TUNED = {"n_runs", "log_every", "curve_episodes", "max_episode_steps"}


def _optuna() -> Any:
    try:
        import optuna
    except ModuleNotFoundError:
        from thorndike.envs import MissingDependencyError

        raise MissingDependencyError('thorndike tune needs Optuna: pip install -e ".[tune]"') from None
    return optuna


# ---- search spaces -------------------------------------------------------------------------------------------------


def default_space(config_cls: type) -> dict[str, dict[str, Any]]:
    """A search space derived from a Config's field types and defaults, for algorithms without a space file:
    booleans try both values; a float default d in (0, 1) (a rate, a probability, a discount) ranges over
    [d / 10, d + 0.9 (1 - d)] and one above 1 over [d / 10, 10 d], on a log scale; an int default d >= 2 (a count
    or a size) over [max(1, d // 4), 4 d] on a log scale. Strings, tuples, zero, negative and None defaults, and the
    fields of :data:`NOT_TUNED`, stay as they are. Values the Config refuses fail their trial, which Optuna records."""
    hints = typing.get_type_hints(config_cls)
    space: dict[str, dict[str, Any]] = {}
    for f in dataclasses.fields(config_cls):
        default = f.default
        if f.name in NOT_TUNED or default is dataclasses.MISSING:
            continue
        kind = hints[f.name]
        if kind is bool:
            space[f.name] = {"choices": [True, False]}
        elif kind is float and isinstance(default, float) and default > 0:
            high = default + 0.9 * (1 - default) if default < 1 else 10 * default
            space[f.name] = {"low": default / 10, "high": high, "log": True}
        elif kind is int and isinstance(default, int) and default >= 2:
            space[f.name] = {"low": max(1, default // 4), "high": 4 * default, "log": True}
    return space


def load_space(algo: str, path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The search space of ``algo``: the file ``path``, else ``thorndike/configs/tune/<algo>.yaml``, else the
    space derived from its config (:func:`default_space`). Entries are checked against the algorithm's fields."""
    from thorndike.registry import get_algorithm

    cls = get_algorithm(algo)
    if path is not None:
        space = _read_space(Path(path))
    elif (SPACE_DIR / f"{cls.name}.yaml").is_file():
        space = _read_space(SPACE_DIR / f"{cls.name}.yaml")
    else:
        space = default_space(cls.Config)
    fields = [f.name for f in dataclasses.fields(cls.Config)] + [f.name for f in dataclasses.fields(RunOptions)]
    for name, spec in space.items():
        if name not in fields:
            raise unknown_field_error(name, fields, f"{cls.name}'s search space")
        _check_spec(name, spec)
    return space


def _read_space(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"search space file {path} does not exist")
    if path.resolve() in seen:
        raise ConfigError(f"search space {path} extends itself")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"search space {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"search space {path} must map field names to ranges or choices")
    base = data.pop("extends", None)
    space = _read_space(path.parent / f"{base}.yaml", (*seen, path.resolve())) if base else {}
    space.update(data)
    return space


def _check_spec(name: str, spec: Any) -> None:
    problem = None
    if not isinstance(spec, dict):
        problem = "a mapping"
    elif "choices" in spec:
        if not isinstance(spec["choices"], list) or not spec["choices"]:
            problem = "a non-empty list of choices"
    elif not {"low", "high"} <= spec.keys() or not all(isinstance(spec[k], int | float) for k in ("low", "high")):
        problem = "{low: L, high: H} with numbers or {choices: [...]}"
    elif not spec["low"] <= spec["high"] or (spec.get("log") and spec["low"] <= 0):
        problem = "low <= high (and low > 0 with log: true)"
    if problem is not None:
        raise ConfigError(f"invalid search space entry {name}: {spec!r}; it must be {problem}")


def suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One value per field of ``space`` from an Optuna trial. List choices (tuple fields) are offered to Optuna as
    their YAML text, which it can store, and given back as lists."""
    params = {}
    for name, spec in space.items():
        if "choices" in spec:
            texts = [_choice_text(c) for c in spec["choices"]]
            picked = trial.suggest_categorical(name, texts)
            params[name] = spec["choices"][texts.index(picked)]
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int) and not isinstance(spec.get("step"), float):
            params[name] = trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step", 1),
                                             log=spec.get("log", False))
        else:
            params[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), step=spec.get("step"),
                                               log=spec.get("log", False))
    return params


def _choice_text(choice: Any) -> Any:
    return yaml.safe_dump(choice, default_flow_style=True).strip() if isinstance(choice, list | dict) else choice


def params_of(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A finished trial's parameters as config values (list choices back as lists)."""
    params = {}
    for name, value in trial.params.items():
        spec = space.get(name, {})
        if "choices" in spec:
            texts = [_choice_text(c) for c in spec["choices"]]
            value = spec["choices"][texts.index(value)] if value in texts else value
        params[name] = value
    return params


# ---- the objective -------------------------------------------------------------------------------------------------


class OptunaReport(Callback):
    """Reports each evaluation during training to an Optuna trial (at step ``offset + global_step``) and stops the
    run when the trial's pruner says so (``pruned`` is then True)."""

    needs_evaluations = True

    def __init__(self, trial: Any, offset: int = 0) -> None:
        self.trial, self.offset, self.pruned = trial, offset, False

    def on_evaluation(self, agent: Any, result: Any) -> bool:
        self.trial.report(result.mean, self.offset + agent.global_step)
        self.pruned = self.trial.should_prune()
        return self.pruned


def tune(algo: str, env: str, trials: int, seeds: int = 1, steps: int = 100_000, eval_every: int | None = None,
         eval_episodes: int = 10, timeout: float | None = None, storage: str | None = None,
         space: str | Path | None = None, folder: str | Path | None = None, config: str | None = None,
         env_kwargs: dict[str, Any] | None = None, wrappers: list[Any] | None = None, **fields: Any) -> Any:
    """Run ``trials`` more trials of the study of ``algo`` on ``env`` (see the module docstring); returns the study.
    ``fields`` are fixed config fields and run options, left out of the search space."""
    optuna = _optuna()
    import thorndike as th
    from thorndike.registry import get_algorithm, read_config_file

    cls = get_algorithm(algo)
    if trials < 1 or seeds < 1 or steps < 1 or eval_episodes < 1:
        raise ConfigError("--trials, --seeds, --steps and --eval-episodes must be >= 1")
    eval_every = eval_every or max(steps // 10, 1)
    search = {k: v for k, v in load_space(cls.name, space).items() if k not in fields}
    if not search:
        raise ConfigError(f"nothing to tune: the search space of {cls.name} is empty once the fixed fields are out")
    folder = Path(folder or Path(fields.pop("run_root", "runs")) / f"tune-{cls.name}-{env}".replace("/", "_"))
    folder.mkdir(parents=True, exist_ok=True)
    default_storage = storage is None
    storage = storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    name = f"tune-{cls.name}-{env}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True,
                                # no pruning on the first quarter of the first seed, whose evaluations say little
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=steps // 4))
    # Seeded by the trials the study has, so a continued study draws new points, not its first ones again.
    study.sampler = optuna.samplers.TPESampler(seed=len(study.trials))
    requeue_abandoned(optuna, study, default_storage)
    states = Counter(trial.state.name.lower() for trial in study.trials)
    so_far = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
    print(f"study {name} in {storage}: {len(study.trials)} trials so far{f' ({so_far})' if so_far else ''}; "
          f"{trials} more, {seeds} seed(s) x {steps} steps each, evaluated every {eval_every} steps")

    def objective(trial: Any) -> float:
        params = suggest(trial, search)
        scores = []
        for k in range(seeds):
            agent = th.make(cls.name, env=env, seed=k, config=config, env_kwargs=env_kwargs, wrappers=wrappers,
                            **{**fields, **params, "run_root": str(folder / "trials" / f"trial-{trial.number}"),
                               "eval_every": eval_every, "eval_episodes": eval_episodes, "progress": False,
                               "tensorboard": False, "pictures": False})
            report = OptunaReport(trial, offset=k * steps)
            agent.learn(steps, callbacks=[report])
            if report.pruned:
                raise optuna.TrialPruned(f"pruned at step {agent.global_step} of seed {k}")
            scores.append(agent.evaluate(episodes=eval_episodes).mean)
        return float(sum(scores) / len(scores))

    def say(study: Any, trial: Any) -> None:
        value = "" if trial.value is None else f" {trial.value:.4g}"
        if trial.state == optuna.trial.TrialState.PRUNED and trial.intermediate_values:
            step = max(trial.intermediate_values)
            value = f" at step {step} (reported {trial.intermediate_values[step]:.4g})"
        shown = ", ".join(f"{k}={_short(v)}" for k, v in params_of(trial, search).items())
        print(f"trial {trial.number}: {trial.state.name.lower()}{value} ({shown})", flush=True)

    study.optimize(objective, n_trials=trials, timeout=timeout, callbacks=[say],
                   catch=(ConfigError, NonFiniteError))
    use = train_command(cls.name, env, env_kwargs or {}, wrappers or [])
    write_results(study, search, folder, use, steps, _typed(cls, {**(read_config_file(config) if config else {}),
                                                                  **fields}))
    return study


def train_command(algo: str, env: str, env_kwargs: dict[str, Any], wrappers: list[Any]) -> str:
    """The ``thorndike train`` line that rebuilds the tuned env (its kwargs and wrappers as the flags spell them)."""

    def text(value: Any) -> str:
        return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()

    line = f"thorndike train {algo} --env {env}"
    if env_kwargs:
        line += " --env-kwargs " + " ".join(f"{k}={text(v)}" for k, v in env_kwargs.items())
    if wrappers:
        line += " --wrappers " + " ".join(
            w if isinstance(w, str) else w["name"] + ":" + ",".join(f"{k}={text(v)}" for k, v in w.items()
                                                                     if k != "name") for w in wrappers)
    return line


def _typed(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Config fields and run options as their fields' types (the command line gives strings)."""
    from thorndike.config import coerce

    types = {f.name: f.type for owner in (cls.Config, RunOptions) for f in dataclasses.fields(owner)}
    return {k: coerce(types[k], v) if k in types else v for k, v in values.items()}


def requeue_abandoned(optuna: Any, study: Any, own_storage: bool) -> None:
    """Trials still RUNNING in a study that only this process uses (the default SQLite file) were left by a killed
    process: mark each failed and queue its parameters again. With a shared ``--storage``, other processes may be
    running trials, so nothing is touched."""
    if not own_storage:
        return
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        if trial.params:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        print(f"trial {trial.number} was left running by a stopped process: marked failed"
              + (", its parameters queued again" if trial.params else ""))


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_results(study: Any, space: dict[str, dict[str, Any]], folder: Path, use: str, steps: int,
                  fixed: dict[str, Any]) -> None:
    """``best.yaml`` (the best trial's config: the base config file and fixed fields, then its parameters, for
    ``train --config``) and ``study.png``."""
    optuna = _optuna()
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    counts = {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
              for state in optuna.trial.TrialState}
    print("trials: " + ", ".join(f"{n} {state}" for state, n in counts.items() if n))
    if complete:
        from thorndike.run import _plain

        best = study.best_trial
        values = {**fixed, **params_of(best, space)}
        header = (f"# The best trial of study {study.study_name}: trial {best.number}, mean final evaluation "
                  f"{best.value:.6g}\n# Use: {use} --config {folder / 'best.yaml'} --steps {steps}\n")
        (folder / "best.yaml").write_text(header + yaml.safe_dump(_plain(values), sort_keys=False))
        print(f"best: trial {best.number}, {best.value:.4g}; config: {folder / 'best.yaml'}")
    print(f"picture: {study_picture(study, folder / 'study.png')}")


def study_picture(study: Any, path: str | Path) -> Path:
    """Optimisation history (each finished trial's value, pruned trials at their last report, the best so far) and
    the parameters' importances (Optuna's default evaluator; with fewer than two finished trials, the objective
    against the first parameter instead)."""
    optuna = _optuna()
    from thorndike.plot import _save, plt

    State = optuna.trial.TrialState
    fig, (history, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    complete = [t for t in study.trials if t.state == State.COMPLETE]
    pruned = [t for t in study.trials if t.state == State.PRUNED and t.intermediate_values]
    history.plot([t.number for t in complete], [t.value for t in complete], "o", label="finished trial")
    if pruned:
        history.plot([t.number for t in pruned], [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
                     "x", color="grey", label="pruned (last report)")
    if complete:
        best, xs, ys = -math.inf, [], []
        for t in complete:
            best = max(best, t.value)
            xs.append(t.number)
            ys.append(best)
        xs.append(study.trials[-1].number)  # the best so far holds to the last trial
        ys.append(best)
        history.step(xs, ys, where="post", color="C3", label="best so far")
    history.set_xlabel("trial")
    history.set_ylabel("objective (mean final evaluation)")
    history.set_title("optimisation history", fontsize=10)
    history.grid(alpha=0.3)
    history.legend(fontsize=7)
    importances = None
    if len(complete) >= 2:
        try:
            with warnings.catch_warnings():  # with few trials, PED-ANOVA warns that the importances are equal
                warnings.simplefilter("ignore", UserWarning)
                importances = optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError, ZeroDivisionError):  # e.g. every parameter constant so far
            importances = None
    if importances:
        names = list(importances)[::-1]
        right.barh(names, [importances[n] for n in names])
        right.set_xlabel("importance (normalised)")
        right.set_title("parameter importances", fontsize=10)
    elif complete and complete[0].params:
        name = next(iter(complete[0].params))
        right.plot([t.params.get(name) for t in complete], [t.value for t in complete], "o")
        right.set_xlabel(name)
        right.set_title(f"objective against {name}", fontsize=10)
    right.grid(alpha=0.3)
    fig.suptitle(f"study {study.study_name}: {len(study.trials)} trials", fontsize=11)
    return _save(fig, path)
