"""The lifecycle's parts: an algorithm without an env (it learns from a data set, as BC or DPO will) still gets a run
folder, logs, checkpoints, exact resume and loading; the lifecycle never reads an algorithm's config by name."""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import thorndike as th
from thorndike.agent import Agent
from thorndike.config import check, describe
from thorndike.core.checkpoint import list_checkpoints, load_checkpoint
from thorndike.interaction import EvalResult
from thorndike.registry import ALGORITHMS

QUIET = dict(progress=False, tensorboard=False, pictures=False)


@dataclass
class DataFitConfig:
    """A config with none of the fields the old lifecycle read by name (n_envs, gamma, log_every)."""

    lr: float = describe("step size", 0.1)
    batch_size: int = describe("samples per step", 8)
    steps_per_row: int = describe("gradient steps per log row", 5)

    def __post_init__(self) -> None:
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        check(self.steps_per_row >= 1, "steps_per_row", self.steps_per_row, ">= 1")


class DataFit(Agent):
    """Fit w to a fixed data set y = 3 x + noise by minibatch SGD: a learner with no env."""

    name = "data_fit"
    Config = DataFitConfig
    action_spaces = ()

    def build(self) -> None:
        data = torch.Generator().manual_seed(0)
        self.x = torch.randn(256, generator=data)
        self.y = 3.0 * self.x + 0.1 * torch.randn(256, generator=data)
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.optimizer = torch.optim.SGD([self.w], lr=self.config.lr)
        self.components = {"w": _ParameterHolder(self.w), "optimizer": self.optimizer}

    def learn(self, total_steps: int) -> DataFit:
        with self.session(total_steps) as run:
            while run.running():
                for _ in range(self.steps_this_iteration(self.config.steps_per_row)):
                    index = torch.randint(0, 256, (self.config.batch_size,), generator=self.generator)
                    loss = ((self.w * self.x[index] - self.y[index]) ** 2).mean()
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()
                    self.global_step += 1
                run.log({"loss": float(loss.detach()), "w": float(self.w.detach())})
        return self

    def evaluate(self, episodes: int = 10, **_: object) -> EvalResult:
        """Its own evaluator: minus the mean squared error on the whole data set."""
        error = -float(((self.w.detach() * self.x - self.y) ** 2).mean())
        return EvalResult(error, 0.0, [error], [len(self.x)])


class _ParameterHolder:
    def __init__(self, parameter: torch.nn.Parameter) -> None:
        self.parameter = parameter

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"value": self.parameter.detach().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.parameter.copy_(state["value"])


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ALGORITHMS, "data_fit", "tests.test_lifecycle:DataFit")


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv", newline="") as f:
        return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in csv.DictReader(f)]


def test_an_algorithm_without_env_gets_the_whole_run(tmp_path: Path, registered: None) -> None:
    agent = th.make("data_fit", seed=1, run_root=str(tmp_path), checkpoint_every=20, keep_checkpoints=0,
                    eval_every=20, **QUIET)
    assert agent.interaction is None and agent.episodes == 0
    agent.learn(100)
    assert abs(float(agent.w) - 3.0) < 0.2  # it learned
    run_dir = agent.run_dir
    assert run_dir.name.startswith("data_fit-1-")  # no env in the folder name
    assert (run_dir / "config.yaml").exists() and (run_dir / "final.pt").exists()
    table = rows(run_dir)
    assert len(table) == 20 and "episodes" not in table[0] and float(table[3]["eval_mean"]) < 0
    assert [load_checkpoint(p)["counters"]["global_step"] for p in list_checkpoints(run_dir / "checkpoints")] == [
        20, 40, 60, 80, 100]
    with pytest.raises(AttributeError, match="has no env interaction"):
        agent.act([0.0])

    # A resumed run (from the checkpoint at step 40) ends exactly where the uninterrupted one did.
    copy = tmp_path / "copy" / run_dir.name
    shutil.copytree(run_dir, copy)
    (copy / "final.pt").unlink()
    for late in list_checkpoints(copy / "checkpoints")[2:]:
        late.unlink()
    resumed = th.resume(copy, **QUIET)
    assert resumed.global_step == 40
    resumed.learn(resumed.total_steps)
    assert torch.equal(load_checkpoint(copy / "final.pt")["components"]["w"]["value"],
                       load_checkpoint(run_dir / "final.pt")["components"]["w"]["value"])
    assert rows(copy) == table
    assert float(th.load(run_dir / "final.pt").w) == float(agent.w)


def test_an_env_algorithm_made_without_env_says_what_to_pass() -> None:
    with pytest.raises(ValueError, match="ppo learns by acting in an env: pass env="):
        th.make("ppo")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(th.ConfigError, match="CUDA is not available here .*use device='cpu'"):
        th.make("ppo", env="CartPole-v1", device="cuda", run_root=str(tmp_path))
    from thorndike.cli import main

    assert main(["train", "ppo", "--env", "CartPole-v1", "--device", "cuda", "--run-root", str(tmp_path)]) == 2


def test_runs_started_in_the_same_instant_get_distinct_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               registered: None) -> None:
    import thorndike.run

    class FrozenClock:
        @staticmethod
        def now() -> object:
            import datetime

            return datetime.datetime(2026, 1, 1)

    monkeypatch.setattr(thorndike.run, "datetime", FrozenClock)
    folders = [th.make("data_fit", run_root=str(tmp_path), **QUIET).learn(5).run_dir for _ in range(3)]
    assert [f.name for f in folders] == ["data_fit-0-20260101-000000-000000", "data_fit-0-20260101-000000-000000-1",
                                         "data_fit-0-20260101-000000-000000-2"]


def test_a_run_root_that_cannot_hold_runs_is_refused_at_construction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     registered: None) -> None:
    import os

    import thorndike.run

    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with pytest.raises(th.ConfigError, match="run_root=.*is a file, not a folder"):
        th.make("data_fit", run_root=str(a_file), **QUIET)
    locked = tmp_path / "locked"
    locked.mkdir()
    # The test runs as root in CI, who may write anywhere; the folder is read-only to the check as it is to a user.
    real_access = os.access
    monkeypatch.setattr(thorndike.run.os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    with pytest.raises(th.ConfigError, match="cannot be written here"):
        th.make("data_fit", run_root=str(locked / "runs"), **QUIET)


def test_a_full_disk_at_the_final_write_names_the_run_and_how_to_resume(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import thorndike.run as run_module

    agent = th.make("q_learning", env="FrozenLake-v1", run_root=str(tmp_path), progress=False, tensorboard=False,
                    pictures=False, log_every=50, checkpoint_every=100)
    real_save = run_module.save_checkpoint

    def full_at_final(state, path):
        if Path(path).name == "final.pt":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(state, path)

    monkeypatch.setattr(run_module, "save_checkpoint", full_at_final)
    with pytest.raises(OSError) as full:
        agent.learn(400)
    note = "".join(full.value.__notes__)
    assert f"final.pt could not be written to {agent.run_dir}" in note
    assert f"thorndike train --resume {agent.run_dir}" in note and "step-000000000400.pt" in note
    monkeypatch.undo()
    resumed = th.resume(agent.run_dir, progress=False)
    assert resumed.global_step == 400


def test_a_run_folder_killed_before_its_config_says_to_start_again(tmp_path: Path) -> None:
    folder = tmp_path / "q_learning-FrozenLake-v1-0-20261130-000000-000000"
    folder.mkdir()  # what a kill between the folder's creation and config.yaml leaves
    with pytest.raises(FileNotFoundError, match="stopped before it began .*start the run again"):
        th.resume(folder)
    (folder / "checkpoints").mkdir()
    with pytest.raises(FileNotFoundError, match="is not a run folder"):
        th.resume(folder)


def test_a_budget_ends_at_the_first_iteration_boundary_past_it_and_the_bar_keeps_its_total(tmp_path: Path,
                                                                                           capsys) -> None:
    """Issue #12, bug 2: learn(N) runs whole iterations (documented in Agent.learn) and the progress bar never shows
    more steps than its total."""
    agent = th.make("ppo", env="CartPole-v1", seed=0, tuned=False, n_envs=4, n_steps=16, minibatch_size=64,
                    n_epochs=1, progress=True, tensorboard=False, pictures=False, run_root=str(tmp_path))
    agent.learn(100)
    assert agent.global_step == 128  # two rollouts of 4 x 16 steps: the first boundary at or past 100
    err = capsys.readouterr().err
    assert "100/100" in err and "128/100" not in err
