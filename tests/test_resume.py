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
