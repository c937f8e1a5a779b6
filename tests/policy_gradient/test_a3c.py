"""A3C's own oracles. The contract suite runs its one-worker example (saving, exact resume, determinism, bad configs,
bad env data); here: a worker's n-step targets by hand, both workers updating the shared model, a clean stop on an
error in a worker and on Ctrl-C, and what a two-worker resume can promise (the saved state, then more training)."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
import torch

import thorndike as th
from tests.test_contract import learning_rows, same_state
from thorndike.config import ConfigError
from thorndike.core.checkpoint import list_checkpoints, load_checkpoint
from thorndike.core.on_policy import gae_targets
from thorndike.core.shared_optim import SharedAdam, SharedRMSprop
from thorndike.policy_gradient import a3c

QUIET = dict(progress=False, tensorboard=False, pictures=False)
SMALL = dict(n_envs=2, n_steps=8, hidden_sizes=(16,))


def make(tmp_path: Path, **fields: Any) -> a3c.A3C:
    return th.make("a3c", env="CartPole-v1", seed=0, run_root=str(tmp_path), **{**QUIET, **SMALL, **fields})


def no_workers_left() -> bool:
    return not [p for p in multiprocessing.active_children() if p.name.startswith("a3c-worker")]


def test_a_workers_targets_are_n_step_returns_by_hand(tmp_path: Path) -> None:
    # One update of worker 0, run in this process; then R_t = r_t + gamma r_t+1 + ... + gamma^(T-t) V(s_T), the
    # sum stopping at a termination (no bootstrap) and bootstrapping from V(final obs) at a truncation, by loops.
    agent = make(tmp_path, n_workers=1, n_steps=40, gamma=0.9)
    counter = multiprocessing.get_context("fork").Value("q", 0)
    worker = a3c.Worker(0, agent.config, agent.model, agent.optimizer, agent.workers[0], agent.buffers[0], counter)
    worker.update(iteration=1)
    buffer = agent.buffers[0]
    assert counter.value == 80 and bool(buffer["terminated"].any())  # random CartPole episodes end within 40 steps
    rewards, values, next_values = buffer["rewards"], buffer["values"], buffer["next_values"]
    terminated, truncated = buffer["terminated"], buffer["truncated"]
    T, N = rewards.shape
    r, v_next, term, trunc = rewards.tolist(), next_values.tolist(), terminated.tolist(), truncated.tolist()
    expected = torch.zeros(T, N)
    for n in range(N):
        for t in range(T):
            total, discount = 0.0, 1.0
            for k in range(t, T):
                total += discount * r[k][n]
                discount *= 0.9
                if term[k][n]:
                    break
                if trunc[k][n] or k == T - 1:
                    total += discount * v_next[k][n]
                    break
            expected[t, n] = total
    advantages, returns = gae_targets(buffer, 0.9, agent.config.gae_lambda)
    torch.testing.assert_close(returns, expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(advantages, expected - values, rtol=1e-5, atol=1e-4)


def test_both_workers_update_the_shared_model_and_its_statistics(tmp_path: Path) -> None:
    agent = make(tmp_path, n_workers=2, n_envs=4, n_steps=16, updates_per_iteration=3)
    before = [p.detach().clone() for p in agent.model.parameters()]
    agent.learn(2 * 3 * 16 * 4)  # one iteration: 3 updates of 16 x 4 steps from each worker
    assert agent.global_step == 384 and agent.iteration == 1
    assert int(learning_rows(agent.run_dir)[-1]["updates"]) == 6
    # A worker stepping a private copy of the statistics would leave 3 steps here at most; shared, both count (6,
    # unless two increments raced: Hogwild takes no lock).
    steps = [int(s["step"]) for s in agent.optimizer.state.values()]
    assert all(3 < s <= 6 for s in steps), steps
    assert all(not torch.equal(a, b) for a, b in zip(before, agent.model.parameters(), strict=True))
    # episodes of worker 0 (copies 0-3) and of worker 1 (copies 4-7): 48 random-ish CartPole steps end some
    copies = set(agent.ledger.columns["copy"].tolist())
    assert copies & {0, 1, 2, 3} and copies & {4, 5, 6, 7}
    # each worker's env copies moved on, and the main process holds their states
    assert all(int(w.interaction.ledger.total) == 0 for w in agent.workers.states)
    assert no_workers_left()


def test_the_shared_optimiser_is_rmsprop_or_adam_and_the_model_is_shared(tmp_path: Path) -> None:
    agent = make(tmp_path)
    assert isinstance(agent.optimizer, SharedRMSprop)
    assert all(p.is_shared() for p in agent.model.parameters())
    assert isinstance(make(tmp_path, optimizer="adam").optimizer, SharedAdam)
    with pytest.raises(ConfigError, match="n_workers"):
        make(tmp_path, n_workers=4 * (os.cpu_count() or 1) + 1)
    with pytest.raises(ConfigError, match="vectorization"):
        make(tmp_path, vectorization="async")


def test_an_error_in_a_worker_stops_them_all_and_is_raised_with_its_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_update = a3c.Worker.update

    def update(self: a3c.Worker, iteration: int) -> torch.Tensor:
        if self.index == 1 and iteration == 4:
            raise ValueError("injected fault in a worker")
        return real_update(self, iteration)

    monkeypatch.setattr(a3c.Worker, "update", update)  # the workers are forked: they run this one
    agent = make(tmp_path, n_workers=2, updates_per_iteration=2, checkpoint_every=1)
    with pytest.raises(ValueError, match="injected fault in a worker") as stopped:
        agent.learn(10_000)
    notes = "\n".join(stopped.value.__notes__)
    assert "raised in a3c worker 1" in notes and "Traceback" in notes and "in update" in notes
    assert "resume with `thorndike train --resume" in notes
    assert no_workers_left()
    # the last checkpoint (iteration 3) is whole and resumes
    monkeypatch.undo()
    resumed = th.resume(agent.run_dir, progress=False)
    assert resumed.global_step == 3 * 2 * 2 * 16
    resumed.learn(resumed.global_step + 128)
    assert resumed.global_step == 3 * 64 + 128 and no_workers_left()


def test_ctrl_c_while_the_workers_run_stops_them_and_the_last_checkpoint_resumes(tmp_path: Path) -> None:
    # SIGINT arrives while the workers are inside a long iteration (the main process waits for their reports).
    class InterruptSoon(th.callbacks.Callback):
        def on_checkpoint(self, agent: Any, path: Path) -> None:
            if agent.iteration == 1:
                threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()

    agent = make(tmp_path, n_workers=2, updates_per_iteration=100, checkpoint_every=1)
    with pytest.raises(KeyboardInterrupt):
        agent.learn(10**7, callbacks=[InterruptSoon()])
    assert no_workers_left()
    last = list_checkpoints(agent.run_dir / "checkpoints")[-1]
    saved = load_checkpoint(last)
    assert saved["counters"]["global_step"] == saved["counters"]["iteration"] * 2 * 100 * 16
    resumed = th.resume(agent.run_dir, progress=False)
    assert same_state(resumed.state_dict()["components"], saved["components"])


def test_a_two_worker_resume_starts_from_the_saved_state_and_trains_on(tmp_path: Path) -> None:
    # Not bit for bit (the workers' interleaving is the OS's): the resumed agent holds exactly the checkpoint's
    # state (shared model, shared statistics, every worker's env copies and generator), then learns on from it.
    agent = make(tmp_path / "a", n_workers=2, updates_per_iteration=2, checkpoint_every=64, keep_checkpoints=0)
    agent.learn(64 * 6)
    copy = tmp_path / "b" / agent.run_dir.name
    shutil.copytree(agent.run_dir, copy)
    (copy / "final.pt").unlink()
    for late in list_checkpoints(copy / "checkpoints")[3:]:
        late.unlink()
    saved = load_checkpoint(list_checkpoints(copy / "checkpoints")[-1])
    resumed = th.resume(copy, progress=False)
    assert resumed.global_step == saved["counters"]["global_step"] == 64 * 3
    assert same_state(resumed.state_dict()["components"], saved["components"])
    resumed.learn(resumed.total_steps)
    assert resumed.global_step == 64 * 6
    assert [int(r["step"]) for r in learning_rows(copy)] == [64 * i for i in range(1, 7)]
    final = load_checkpoint(copy / "final.pt")["components"]
    assert not same_state(final["model"], saved["components"]["model"])
    assert not same_state(final["workers"], saved["components"]["workers"])
    assert no_workers_left()
