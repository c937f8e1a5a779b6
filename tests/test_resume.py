"""Exact resume: a run killed with SIGKILL and resumed ends exactly where an uninterrupted run with the same seed
ends (final weights and every learning column of progress.csv), on Gymnasium envs and on native torch envs."""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

import thorndike as th
from thorndike.core.checkpoint import list_checkpoints, load_checkpoint

FIELDS = ["--n-envs", "4", "--n-steps", "64", "--minibatch-size", "64", "--n-epochs", "4",
          "--checkpoint-every", "1024", "--keep-checkpoints", "0", "--progress", "false", "--tensorboard", "false"]


def train_command(run_root: Path, steps: int, backend: str) -> list[str]:
    return [sys.executable, "-m", "thorndike.cli", "train", "ppo", "--env", "CartPole-v1", "--seed", "3",
            "--steps", str(steps), "--run-root", str(run_root), "--backend", backend, *FIELDS]


def only_run(run_root: Path) -> Path:
    (run_dir,) = list(run_root.iterdir())
    return run_dir


def learning_rows(run_dir: Path) -> list[dict[str, str]]:
    """progress.csv without the wall-clock columns, which differ between any two runs."""
    with open(run_dir / "progress.csv", newline="") as f:
        return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in csv.DictReader(f)]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "final.pt")["components"]["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"weights differ at {key}"


@pytest.mark.parametrize("backend", ["gymnasium", "torch"])
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path, backend: str) -> None:
    steps = 16384
    reference_root, killed_root = tmp_path / "reference", tmp_path / "killed"
    subprocess.run(train_command(reference_root, steps, backend), check=True, capture_output=True, timeout=300)
    reference = only_run(reference_root)

    process = subprocess.Popen(train_command(killed_root, steps, backend), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        runs = list(killed_root.iterdir()) if killed_root.exists() else []
        if runs and len(list_checkpoints(runs[0] / "checkpoints")) >= 2:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed; the test needs a longer run"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    killed = only_run(killed_root)
    assert not (killed / "final.pt").exists(), "the killed run must not have finished"
    checkpoint_step = load_checkpoint(list_checkpoints(killed / "checkpoints")[-1])["counters"]["global_step"]
    assert 0 < checkpoint_step < steps

    resumed = subprocess.run([sys.executable, "-m", "thorndike.cli", "train", "--resume", str(killed)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"at step {checkpoint_step}" in resumed.stdout

    assert_same_weights(final_weights(reference), final_weights(killed))
    reference_rows, resumed_rows = learning_rows(reference), learning_rows(killed)
    assert len(resumed_rows) == len(reference_rows) == steps // 256
    after = [i for i, row in enumerate(reference_rows) if int(row["step"]) > checkpoint_step]
    assert after, "some rows must come after the checkpoint"
    assert reference_rows == resumed_rows


@pytest.mark.parametrize("backend", ["gymnasium", "torch"])
def test_resume_skips_a_corrupted_checkpoint_and_still_matches(tmp_path: Path, backend: str) -> None:
    options = dict(n_envs=4, n_steps=32, minibatch_size=64, n_epochs=2, checkpoint_every=256, keep_checkpoints=0,
                   progress=False, tensorboard=False, backend=backend)
    reference = th.make("ppo", env="CartPole-v1", seed=5, run_root=str(tmp_path / "a"), **options).learn(1024)

    interrupted_dir = tmp_path / "b" / reference.run_dir.name
    shutil.copytree(reference.run_dir, interrupted_dir)
    (interrupted_dir / "final.pt").unlink()
    checkpoints = list_checkpoints(interrupted_dir / "checkpoints")
    assert [load_checkpoint(p)["counters"]["global_step"] for p in checkpoints] == [256, 512, 768, 1024]
    for late in checkpoints[2:]:  # pretend the run died while writing its 2nd checkpoint ...
        late.unlink()
    newest = checkpoints[1]
    newest.write_bytes(newest.read_bytes()[:-100])  # ... which was cut short

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        agent = th.resume(interrupted_dir)
    assert any(str(newest) in str(w.message) and "truncated" in str(w.message) for w in caught)
    assert agent.global_step == 256  # fell back to the 1st checkpoint
    agent.learn(agent.total_steps)
    assert_same_weights(final_weights(reference.run_dir), final_weights(interrupted_dir))
    assert learning_rows(reference.run_dir) == learning_rows(interrupted_dir)


def small_run(root: Path, algo: str = "ppo", env: str = "CartPole-v1", seed: int = 5, **fields: object) -> Path:
    options = dict(checkpoint_every=256, keep_checkpoints=0, progress=False, tensorboard=False, pictures=False)
    if algo == "ppo":
        options |= dict(n_envs=4, n_steps=32, minibatch_size=64, n_epochs=2)
    return th.make(algo, env=env, seed=seed, run_root=str(root), **options, **fields).learn(1024).run_dir


@pytest.mark.parametrize("foreign", ["other algorithm and env", "other seed", "other config"])
def test_resume_refuses_a_foreign_checkpoint_by_name_and_falls_back(tmp_path: Path, foreign: str) -> None:
    reference = small_run(tmp_path / "reference")
    intruder = {
        "other algorithm and env": lambda: small_run(tmp_path / "q", "q_learning", "FrozenLake-v1") / "final.pt",
        "other seed": lambda: small_run(tmp_path / "seed", seed=6) / "final.pt",
        "other config": lambda: small_run(tmp_path / "lr", ent_coef=0.01) / "final.pt",
    }[foreign]()
    expected = {"other algorithm and env": "its algo is 'q_learning', the run's is 'ppo'",
                "other seed": "its seed is 6, the run's is 5",
                "other config": "its config differs in ent_coef"}[foreign]

    killed = tmp_path / "killed" / reference.name
    shutil.copytree(reference, killed)
    (killed / "final.pt").unlink()
    checkpoints = list_checkpoints(killed / "checkpoints")
    for late in checkpoints[2:]:
        late.unlink()
    newest = killed / "checkpoints" / "step-000000000768.pt"
    shutil.copy(intruder, newest)  # another run's file, placed as this run's newest checkpoint

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        agent = th.resume(killed)
    assert any(str(newest) in str(w.message) and expected in str(w.message) for w in caught), [
        str(w.message) for w in caught]
    assert agent.name == "ppo" and agent.global_step == 512  # its own newest checkpoint
    agent.learn(agent.total_steps)
    assert_same_weights(final_weights(reference), final_weights(killed))
    assert learning_rows(reference) == learning_rows(killed)


def test_loading_a_run_folder_skips_a_damaged_or_foreign_final_file(tmp_path: Path) -> None:
    run_dir = small_run(tmp_path / "ppo")
    batch = th.envs.make("CartPole-v1", n_envs=4, seed=1).reset(seed=1)
    expected = th.load(run_dir / "checkpoints" / "step-000000001024.pt").act(batch)
    final = run_dir / "final.pt"
    final.write_bytes(final.read_bytes()[:-50])  # damaged
    with pytest.warns(UserWarning, match="final.pt is truncated"):
        assert torch.equal(th.load(run_dir).act(batch), expected)
    shutil.copy(small_run(tmp_path / "q", "q_learning", "FrozenLake-v1") / "final.pt", final)  # foreign
    with pytest.warns(UserWarning, match="final.pt does not belong to this run .*algo is 'q_learning'"):
        agent = th.load(run_dir)
    assert agent.name == "ppo" and torch.equal(agent.act(batch), expected)


def test_resuming_a_run_without_any_checkpoint_says_to_start_again(tmp_path: Path) -> None:
    run_dir = small_run(tmp_path)
    shutil.rmtree(run_dir / "checkpoints")  # as if killed before its first checkpoint
    (run_dir / "final.pt").unlink()
    with pytest.raises(th.CheckpointError, match="has no checkpoint yet.*start the run again"):
        th.resume(run_dir)


def test_tensorboard_keeps_every_row_across_a_resume(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    options = dict(n_envs=4, n_steps=32, minibatch_size=64, n_epochs=2, checkpoint_every=256, keep_checkpoints=0,
                   progress=False, pictures=False)
    reference = th.make("ppo", env="CartPole-v1", seed=5, run_root=str(tmp_path / "a"), **options).learn(1024).run_dir
    resumed_dir = tmp_path / "b" / reference.name
    shutil.copytree(reference, resumed_dir)
    (resumed_dir / "final.pt").unlink()
    for late in list_checkpoints(resumed_dir / "checkpoints")[2:]:
        late.unlink()
    agent = th.resume(resumed_dir, progress=False)
    agent.learn(agent.total_steps)

    def scalar_steps(run_dir: Path) -> list[int]:
        events = EventAccumulator(str(run_dir))
        events.Reload()
        return [event.step for event in events.Scalars("iteration")]

    # every iteration once, the checkpoint's own step (512) included, as in the uninterrupted run
    assert scalar_steps(resumed_dir) == scalar_steps(reference) == list(range(128, 1025, 128))


def test_the_progress_file_is_rewritten_atomically_on_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = small_run(tmp_path)
    before = (run_dir / "progress.csv").read_text()
    (run_dir / "final.pt").unlink()

    def killed_mid_write(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the process dies before the rename

    monkeypatch.setattr("thorndike.core.checkpoint.os.replace", killed_mid_write)
    agent = th.resume(run_dir, progress=False)
    with pytest.raises(KeyboardInterrupt):
        agent.learn(agent.total_steps)
    assert (run_dir / "progress.csv").read_text() == before  # the old file, whole
    assert not list(run_dir.glob(".progress.csv.tmp-*"))  # and no temporary file left behind
