"""Hyperparameter tuning (thorndike/tune.py): search spaces (shipped, derived, checked), a tiny study through the
command line, its best config accepted by train --config, and a study continued by running the command again."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from thorndike.cli import main
from thorndike.config import ConfigError, build_config, describe
from thorndike.registry import ALGORITHMS, get_algorithm
from thorndike.tune import SPACE_DIR, default_space, load_space, suggest

optuna = pytest.importorskip("optuna", reason="thorndike tune needs optuna (the tune and dev extras install it)")


@dataclasses.dataclass
class ToyConfig:
    rate: float = describe("a rate", 0.1)
    scale: float = describe("a scale", 2.0)
    count: int = describe("a count", 8)
    flag: bool = describe("a switch", False)
    kind: str = describe("a name", "a")
    n_runs: int = describe("how many runs", 5)
    zero: float = describe("off", 0.0)
    one: int = describe("a single thing", 1)


def test_the_derived_space_follows_types_and_defaults() -> None:
    space = default_space(ToyConfig)
    assert space == {"rate": {"low": pytest.approx(0.01), "high": pytest.approx(0.91), "log": True},  # 0.1 + 0.9 * 0.9
                     "scale": {"low": pytest.approx(0.2), "high": pytest.approx(20.0), "log": True},
                     "count": {"low": 2, "high": 32, "log": True},
                     "flag": {"choices": [True, False]}}


def test_shipped_spaces_extend_and_every_sample_is_a_valid_config() -> None:
    assert set(load_space("q_learning")) == set(yaml.safe_load((SPACE_DIR / "tabular_control.yaml").read_text()))
    assert load_space("n_step_sarsa")["n"] == {"choices": [1, 2, 4, 8, 16]}
    shipped = sorted(p.stem for p in SPACE_DIR.glob("*.yaml") if p.stem in ALGORITHMS)
    assert {"ppo", "q_learning", "sarsa", "expected_sarsa", "double_q_learning", "dyna_q"} <= set(shipped)
    for algo in shipped:
        space, config_cls = load_space(algo), get_algorithm(algo).Config
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(20):
            build_config(config_cls, suggest(study.ask(), space))  # raises ConfigError for a value out of range
    params = suggest(optuna.create_study().ask(), load_space("ppo"))
    assert isinstance(params["hidden_sizes"], list)
    assert build_config(get_algorithm("ppo").Config, params).hidden_sizes in ((32, 32), (64, 64))


def test_every_registered_algorithm_has_a_space() -> None:
    for algo in ALGORITHMS:
        assert load_space(algo), algo


def test_bad_space_entries_are_refused_by_name(tmp_path: Path) -> None:
    for text, match in (("alpah: {low: 0.1, high: 1}", "unknown config field 'alpah'.*Did you mean alpha"),
                        ("alpha: {low: 1, high: 0.1}", "alpha.*low <= high"),
                        ("alpha: {low: 0, high: 1, log: true}", "alpha.*low > 0 with log"),
                        ("alpha: [0.1, 0.2]", "alpha.*a mapping"),
                        ("alpha: {choices: []}", "alpha.*non-empty list")):
        (tmp_path / "space.yaml").write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_space("q_learning", tmp_path / "space.yaml")


def test_a_tiny_study_writes_its_best_config_and_goes_on_when_run_again(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "study"
    command = ["tune", "q_learning", "--env", "FrozenLake-v1", "--env-kwargs", "is_slippery=false", "--trials", "2",
               "--steps", "600", "--eval-every", "200", "--eval-episodes", "5", "--folder", str(folder),
               "--n-runs", "2", "--log-every", "100"]
    assert main(command) == 0
    assert (folder / "study.db").is_file() and (folder / "study.png").stat().st_size > 10_000
    storage = f"sqlite:///{folder / 'study.db'}"
    study = optuna.load_study(study_name="tune-q_learning-FrozenLake-v1", storage=storage)
    assert len(study.trials) == 2 and all(len(t.intermediate_values) == 3 for t in study.trials)  # 200, 400, 600
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert best == {"n_runs": 2, "log_every": 100, **study.best_trial.params}
    header = (folder / "best.yaml").read_text().splitlines()[1]
    assert header.startswith("# Use: thorndike train q_learning --env FrozenLake-v1 --env-kwargs is_slippery=false")

    runs = tmp_path / "runs"
    assert main(["train", "q_learning", "--env", "FrozenLake-v1", "--env-kwargs", "is_slippery=false", "--config",
                 str(folder / "best.yaml"), "--steps", "200", "--run-root", str(runs), "--progress", "false",
                 "--pictures", "false"]) == 0
    (run,) = runs.iterdir()
    assert yaml.safe_load((run / "config.yaml").read_text())["config"]["alpha"] == best["alpha"]

    assert main(command) == 0  # the same command: the same study, two more trials
    study = optuna.load_study(study_name="tune-q_learning-FrozenLake-v1", storage=storage)
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert "2 trials so far (2 complete); 2 more" in capsys.readouterr().out

    # A process killed during a trial leaves it RUNNING: the next run marks it failed and tries its parameters again.
    study.enqueue_trial({"alpha": 0.5})
    left = study.ask({"alpha": optuna.distributions.FloatDistribution(0.01, 1.0, log=True)})
    assert left.params == {"alpha": 0.5}
    assert main([*command[:7], "1", *command[8:]]) == 0
    study = optuna.load_study(study_name="tune-q_learning-FrozenLake-v1", storage=storage)
    assert study.trials[left.number].state == optuna.trial.TrialState.FAIL
    (retry,) = [t for t in study.trials if t.user_attrs.get("retry_of") == left.number]
    assert retry.params["alpha"] == 0.5
    assert retry.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)  # it ran to an end
    assert len(study.trials) == 6
