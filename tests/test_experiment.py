"""Multi-seed experiments (thorndike/experiment.py): seeds from the command line, one process per seed, a failed
and a killed seed losing nothing of the others, resuming the unfinished ones, and the plot over seeds."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from thorndike.cli import build_parser, main
from thorndike.config import ConfigError
from thorndike.core.checkpoint import list_checkpoints
from thorndike.core.logger import read_progress
from thorndike.experiment import Experiment, parse_seeds


def test_seeds_are_read_as_lists_and_ranges() -> None:
    assert parse_seeds(["0-9"]) == list(range(10))
    assert parse_seeds(["0", "1", "2"]) == [0, 1, 2]
    assert parse_seeds(["0-4,7"]) == [0, 1, 2, 3, 4, 7]
    assert parse_seeds(["3", "1-3"]) == [3, 1, 2]  # repeats dropped, order kept
    for bad in (["4-2"], ["x"], ["-1"], [""]):
        with pytest.raises(ConfigError, match="seed"):
            parse_seeds(bad)
    # --seed takes the same forms: one seed is one run, several an experiment
    args, _ = build_parser().parse_known_args(["train", "ppo", "--env", "CartPole-v1", "--seed", "0", "1", "2"])
    assert parse_seeds(args.seed) == [0, 1, 2] and args.seeds is None
    args, _ = build_parser().parse_known_args(["train", "ppo", "--seeds", "0-4,7", "--workers", "3"])
    assert parse_seeds(args.seeds) == [0, 1, 2, 3, 4, 7] and args.workers == 3


# CartPole whose copy seeded 1 is SIGKILLed at its 200th step and whose copy seeded 2 raises at its first, while
# the marker file exists. With one copy per run, copy 0 is seeded with the run's seed.
FLAKY_ENV = """
import os
import signal

import gymnasium as gym


class Flaky(gym.Wrapper):
    def __init__(self, env, marker):
        super().__init__(env)
        self.marker, self.run_seed, self.steps = marker, None, 0

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.run_seed = seed
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        self.steps += 1
        if os.path.exists(self.marker):
            if self.run_seed == 1 and self.steps == 200:
                os.kill(os.getpid(), signal.SIGKILL)
            if self.run_seed == 2:
                raise RuntimeError("seed 2 cannot step")
        return self.env.step(action)


def make(marker):
    return Flaky(gym.make("CartPole-v1"), marker)
"""


def test_a_failed_and_a_killed_seed_lose_nothing_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flaky_env_module.py").write_text(textwrap.dedent(FLAKY_ENV))
    monkeypatch.syspath_prepend(str(tmp_path))
    marker = tmp_path / "marker"
    marker.touch()
    command = ["train", "ppo", "--env", "flaky_env_module:make", "--env-kwargs", f"marker={marker}", "--seeds",
               "0-2", "--workers", "2", "--steps", "320", "--n-envs", "1", "--n-steps", "32", "--minibatch-size",
               "32", "--n-epochs", "1", "--hidden-sizes", "8", "--checkpoint-every", "64", "--eval-every", "64",
               "--eval-episodes", "2", "--run-root", str(tmp_path / "runs"), "--pictures", "false",
               "--tensorboard", "false"]
    assert main(command) == 1
    err = capsys.readouterr().err
    assert "2 of 3 seeds did not finish (seed 1 killed (SIGKILL), seed 2 failed (exit 1))" in err
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.startswith("ppo-flaky_env_module:make-") and folder.name.endswith("-seeds")
    experiment = Experiment(folder)
    assert [(e["seed"], e["status"]) for e in experiment.runs] == [(0, "done"), (1, "killed (SIGKILL)"),
                                                                    (2, "failed (exit 1)")]
    done = experiment.run_dir(0)
    assert (done / "final.pt").is_file() and read_progress(done)["step"][-1] == 320
    killed = experiment.run_dir(1)
    assert list_checkpoints(killed / "checkpoints")[-1].name.endswith("-000000000192.pt")  # SIGKILLed at 200
    assert not (killed / "final.pt").exists()
    assert "RuntimeError: seed 2 cannot step" in (folder / "logs" / "seed-2.log").read_text()
    finished_at = (done / "final.pt").stat().st_mtime_ns

    marker.unlink()
    assert main(["train", "--resume", str(folder), "--workers", "2"]) == 0
    experiment = Experiment(folder)
    assert [e["status"] for e in experiment.runs] == ["done"] * 3
    assert (done / "final.pt").stat().st_mtime_ns == finished_at, "a done seed is left alone"
    assert experiment.run_dir(1) == killed  # went on in its own folder, from its checkpoint
    assert "resuming" in (folder / "logs" / "seed-1.log").read_text() and "at step 192 of 320" in (
        folder / "logs" / "seed-1.log").read_text()
    for seed in (0, 1, 2):
        progress = read_progress(experiment.run_dir(seed))
        assert progress["step"] == [32.0 * k for k in range(1, 11)]
    assert yaml.safe_load((folder / "experiment.yaml").read_text())["make"]["fields"]["n_envs"] == "1"

    assert main(["plot", str(folder), "--labels", "flaky"]) == 0
    assert (folder / "seeds.png").stat().st_size > 10_000
    assert main(["train", "--resume", str(folder)]) == 0  # nothing left: says so
    assert "every seed is done" in capsys.readouterr().out


def fake_experiment(folder: Path, alpha: float, seeds: dict[int, list[tuple[int, float]]]) -> Path:
    """An experiment folder as train --seeds leaves it: experiment.yaml and, per seed, config.yaml and
    progress.csv with the given (step, eval_mean) rows (training return: eval_mean - 1)."""
    folder.mkdir(parents=True)
    runs = []
    for seed, rows in seeds.items():
        run = folder / f"q_learning-FrozenLake-v1-{seed}-x"
        run.mkdir()
        (run / "config.yaml").write_text(yaml.safe_dump({"algo": "q_learning", "env": "FrozenLake-v1", "seed": seed,
                                                          "config": {"alpha": alpha, "gamma": 0.99}}))
        lines = ["step,return_mean,eval_mean"] + [f"{s},{v - 1},{v}" for s, v in rows]
        (run / "progress.csv").write_text("\n".join(lines) + "\n")
        runs.append({"seed": seed, "run": run.name, "status": "done"})
    record = {"algo": "q_learning", "env": "FrozenLake-v1", "steps": 300, "seeds": list(seeds), "runs": runs,
              "make": {"algo": "q_learning", "env": "FrozenLake-v1", "config": None, "env_kwargs": {},
                       "wrappers": [], "fields": {"alpha": str(alpha)}}}
    (folder / "experiment.yaml").write_text(yaml.safe_dump(record))
    return folder


def test_plot_of_experiments_labels_them_by_what_differs_and_reads_seeds_on_a_common_grid(tmp_path: Path) -> None:
    from thorndike.plot import experiment_labels, seed_curves

    slow = fake_experiment(tmp_path / "slow", 0.1, {0: [(100, 0.0), (200, 0.5), (300, 1.0)],
                                                    1: [(150, 0.2), (250, 0.4), (350, 0.6)]})
    fast = fake_experiment(tmp_path / "fast", 0.5, {0: [(100, 1.0), (300, 1.0)], 1: [(100, 0.0), (300, 1.0)]})
    assert experiment_labels([slow, fast]) == ["alpha=0.1", "alpha=0.5"]
    assert experiment_labels([slow]) == ["q_learning on FrozenLake-v1"]
    column, steps, values = seed_curves(slow)
    assert column == "eval_mean" and [list(s) for s in steps] == [[100, 200, 300], [150, 250, 350]]
    assert seed_curves(slow, "train")[2][0].tolist() == [-1.0, -0.5, 0.0]
    out = tmp_path / "both.png"
    assert main(["plot", str(slow), str(fast), "--out", str(out)]) == 0 and out.stat().st_size > 10_000
    assert main(["plot", str(slow), str(tmp_path / "slow" / "q_learning-FrozenLake-v1-0-x")]) == 2  # mixed: refused
    assert main(["plot", str(slow), str(fast), "--labels", "one"]) == 2  # one label per experiment
