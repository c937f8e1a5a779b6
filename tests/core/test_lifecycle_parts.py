"""The core parts of the run lifecycle: rollout buffer, running statistics, seeding, logger."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from thorndike.core.buffers import RolloutBuffer, minibatches
from thorndike.core.logger import Logger, read_progress
from thorndike.core.running_stats import RunningMeanStd
from thorndike.core.seeding import rng_states, seed_everything, set_rng_states


def test_rollout_buffer_rows_and_flat_layout() -> None:
    buf = RolloutBuffer(3, 2, {"obs": ((4,), torch.float32), "done": ((), torch.bool)})
    for t in range(3):
        buf.add(t, obs=torch.full((2, 4), float(t)), done=torch.tensor([t == 2, False]))
    flat = buf.flat(extra=torch.arange(6.0).view(3, 2))
    assert flat["obs"].shape == (6, 4) and flat["extra"].tolist() == [0, 1, 2, 3, 4, 5]
    # time-major: rows 2t and 2t+1 hold step t of copies 0 and 1
    assert flat["obs"][:, 0].tolist() == [0, 0, 1, 1, 2, 2]
    assert flat["done"].tolist() == [False, False, False, False, True, False]


def test_minibatches_cover_every_sample_once_and_follow_the_generator() -> None:
    batch = {"x": torch.arange(10), "y": torch.arange(10) * 2}
    parts = list(minibatches(batch, 4, torch.Generator().manual_seed(0)))
    assert [len(p["x"]) for p in parts] == [4, 4, 2]
    seen = torch.cat([p["x"] for p in parts])
    assert sorted(seen.tolist()) == list(range(10))
    assert all(torch.equal(p["y"], p["x"] * 2) for p in parts)  # fields stay aligned
    again = torch.cat([p["x"] for p in minibatches(batch, 4, torch.Generator().manual_seed(0))])
    assert torch.equal(seen, again)


def test_running_mean_std_equals_the_statistics_of_everything_seen() -> None:
    data = torch.randn(1000, 3, generator=torch.Generator().manual_seed(0)) * 3 + 5
    stats = RunningMeanStd((3,), epsilon=0.0 + 1e-12)
    for chunk in data.split(137):
        stats.update(chunk)
    torch.testing.assert_close(stats.mean, data.double().mean(0))
    torch.testing.assert_close(stats.var, data.double().var(0, unbiased=False))
    copy = RunningMeanStd((3,))
    copy.load_state_dict(stats.state_dict())
    torch.testing.assert_close(copy.std, stats.std)


def test_rng_states_round_trip_all_generators() -> None:
    generator = seed_everything(7)
    state = rng_states(generator)
    first = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=generator).item())
    set_rng_states(state, generator)
    second = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=generator).item())
    assert first == second


def test_logger_truncates_rows_after_the_resume_step(tmp_path: Path) -> None:
    logger = Logger(tmp_path, tensorboard=False)
    for step in (10, 20, 30):
        logger.log(step, {"loss": step / 10, "eval": float("nan") if step != 20 else 1.5})
    logger.close()
    resumed = Logger(tmp_path, resume_step=20, tensorboard=False)
    resumed.log(30, {"loss": 9.0, "eval": 2.0})
    resumed.close()
    progress = read_progress(tmp_path)
    assert progress["step"] == [10, 20, 30] and progress["loss"] == [1.0, 2.0, 9.0]
    assert np.isnan(progress["eval"][0]) and progress["eval"][1:] == [1.5, 2.0]


def write_three_rows(folder: Path) -> str:
    logger = Logger(folder, tensorboard=False)
    for step in (10, 20, 30):
        logger.log(step, {"loss": step / 10})
    logger.close()
    return (folder / "progress.csv").read_text()


@pytest.mark.parametrize("cut", ["3", "30,", "30,3."], ids=["inside the step", "after the step", "inside a value"])
def test_a_row_a_kill_cut_short_is_dropped_with_a_warning(tmp_path: Path, cut: str) -> None:
    text = write_three_rows(tmp_path)
    (tmp_path / "progress.csv").write_text(text[:text.index("30,")] + cut)  # the row of step 30, half written
    with pytest.warns(UserWarning, match="dropped 1 incomplete row"):
        resumed = Logger(tmp_path, resume_step=20, tensorboard=False)
    resumed.log(30, {"loss": 9.0})
    resumed.close()
    assert read_progress(tmp_path) == {"step": [10.0, 20.0, 30.0], "loss": [1.0, 2.0, 9.0]}


def test_a_log_that_is_not_text_is_set_aside_and_a_new_one_started(tmp_path: Path) -> None:
    write_three_rows(tmp_path)
    (tmp_path / "progress.csv").write_bytes(bytes(range(256)) * 3)
    with pytest.warns(UserWarning, match="rows up to step 20 are lost"):
        resumed = Logger(tmp_path, resume_step=20, tensorboard=False)
    resumed.log(30, {"loss": 9.0})
    resumed.close()
    assert (tmp_path / "progress.csv.damaged").read_bytes() == bytes(range(256)) * 3
    assert read_progress(tmp_path) == {"step": [30.0], "loss": [9.0]}


def test_a_missing_log_on_resume_is_said_and_restarted(tmp_path: Path) -> None:
    write_three_rows(tmp_path)
    (tmp_path / "progress.csv").unlink()
    with pytest.warns(UserWarning, match="missing: the rows up to step 20 are lost"):
        resumed = Logger(tmp_path, resume_step=20, tensorboard=False)
    resumed.log(30, {"loss": 9.0})
    resumed.close()
    assert read_progress(tmp_path) == {"step": [30.0], "loss": [9.0]}
