"""plot.episode_curves and runs_mean: many runs' per-episode values as a mean with a standard-error band; the
learning curves of runs: labels that tell runs apart, and stretches where no episode ended marked as such."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from thorndike import plot


def test_runs_mean_by_hand_with_a_run_that_has_fewer_episodes():
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0], [3.0, 4.0, math.nan, math.nan]])
    episodes, mean, sem = plot.runs_mean(values)
    assert episodes.tolist() == [1, 2, 3, 4]
    assert np.allclose(mean, [2.0, 3.0, 3.0, 4.0])  # the missing episodes average over the one run that has them
    # sample std over 2 runs: sqrt(((1-2)^2 + (3-2)^2) / 1) = sqrt(2), over sqrt(2); one run: no standard error
    assert np.allclose(sem[:2], [1.0, 1.0]) and np.isnan(sem[2:]).all()


def test_the_band_is_the_standard_error_of_the_smoothed_mean_by_hand():
    values = np.array([[1.0, 3.0, 5.0, 7.0], [3.0, 3.0, 3.0, 3.0], [0.0, 2.0, math.nan, math.nan]])
    episodes, mean, sem = plot.runs_mean(values, smooth=2)
    # each run smoothed first: [2, 4, 6], [3, 3, 3], [1, -, -] (the third run's window ends past its last episode)
    assert episodes.tolist() == [2, 3, 4]
    assert np.allclose(mean, [(2 + 3 + 1) / 3, (4 + 3) / 2, (6 + 3) / 2])
    # s.e. = sample std / sqrt(n): (2, 3, 1) -> 1 / sqrt(3); (4, 3) -> sqrt(.5) / sqrt(2); (6, 3) -> sqrt(4.5) / sqrt(2)
    assert np.allclose(sem, [1 / math.sqrt(3), 0.5, 1.5])


def test_episode_curves_draws_ragged_runs(tmp_path):
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, math.nan, math.nan]])
    path = plot.episode_curves({"a": values, "b": values * 2}, tmp_path / "e.png", smooth=2)
    assert path.stat().st_size > 5_000


def test_held_stretches_split_where_no_episode_ended():
    steps = [10, 20, 30, 40, 50, 60]
    returns = [1.0, 2.0, 2.0, 2.0, 3.0, 4.0]
    episodes = [1, 2, 2, 2, 3, 4]  # none ended between steps 20 and 40
    (fx, fy), (hx, hy) = plot.held_stretches(steps, returns, episodes)
    assert fx[:2] == [10, 20] and math.isnan(fx[2]) and fx[3:] == [40, 50, 60]
    assert fy[:2] == [1.0, 2.0] and fy[3:] == [2.0, 3.0, 4.0]
    assert (hx, hy) == ([20, 30, 40], [2.0, 2.0, 2.0])
    assert plot.held_stretches(steps, returns, None) == ((steps, returns), ([], []))


def fake_run(folder: Path, progress: list[tuple[int, int, float]], **config: object) -> Path:
    folder.mkdir(parents=True)
    record = {"algo": "ppo", "env": "CartPole-v1", "seed": 0, "config": {"lr": 0.001, "gamma": 0.99, **config},
              "options": {"device": "cpu"}}
    (folder / "config.yaml").write_text(yaml.safe_dump(record))
    rows = ["step,episodes,return_mean,eval_mean"] + [f"{s},{e},{r},nan" for s, e, r in progress]
    (folder / "progress.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_learning_curves_tell_alike_runs_apart_and_mark_held_returns(tmp_path, monkeypatch):
    rows = [(100, 1, 5.0), (200, 2, 6.0), (300, 2, 6.0), (400, 3, 8.0)]
    runs = [fake_run(tmp_path / "a", rows), fake_run(tmp_path / "b", rows, lr=0.01),
            fake_run(tmp_path / "c", rows, lr=0.01)]
    assert plot.run_labels(runs[:2]) == ["ppo CartPole-v1 seed 0 (lr=0.001)", "ppo CartPole-v1 seed 0 (lr=0.01)"]
    assert plot.run_labels(runs[1:]) == ["ppo CartPole-v1 seed 0 (b)", "ppo CartPole-v1 seed 0 (c)"]  # same config
    alike = [fake_run(tmp_path / f"ppo-CartPole-v1-0-2026010{i}-1200", rows) for i in (1, 2)]
    assert plot.run_labels(alike) == [f"ppo CartPole-v1 seed 0 (2026010{i}-1200)" for i in (1, 2)]
    labels = plot.run_labels(runs)
    assert len(set(labels)) == 3 and labels[0] == "ppo CartPole-v1 seed 0 (lr=0.001)"

    figures = []
    monkeypatch.setattr(plot, "_save", lambda fig, path, **kwargs: figures.append(fig) or Path(path))
    plot.learning_curves(runs[:2], tmp_path / "curves.png")
    legend = figures[0].axes[0].get_legend_handles_labels()[1]
    assert "ppo CartPole-v1 seed 0 (lr=0.001): training return" in legend
    assert legend.count("no episode ended: training return held") == 1  # one entry for both runs' dotted stretches
    held = [line for line in figures[0].axes[0].get_lines() if line.get_linestyle() == ":"]
    assert [list(line.get_xdata()) for line in held] == [[200, 300]] * 2


@pytest.mark.parametrize("smooth", [1, 3])
def test_runs_mean_of_identical_runs_has_no_spread(smooth):
    values = np.tile(np.arange(6.0), (4, 1))
    _, mean, sem = plot.runs_mean(values, smooth)
    assert np.allclose(sem, 0.0) and np.allclose(mean, np.convolve(np.arange(6.0), np.ones(smooth) / smooth, "valid"))
