"""Every registered algorithm on a CUDA GPU: a few iterations, save, load (on CUDA and on the CPU), and an exact
resume on the same device. Skipped on machines without CUDA; run it with ``pytest -m cuda tests/test_cuda.py``."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch

import thorndike as th
from thorndike.core.checkpoint import list_checkpoints, load_checkpoint
from thorndike.registry import ALGORITHMS, example

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

QUIET = dict(progress=False, tensorboard=False, pictures=False)


def leaves_equal(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a.cpu(), b.cpu())
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(leaves_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(leaves_equal(x, y) for x, y in zip(a, b))
    return a == b


def learning_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv", newline="") as f:
        return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in csv.DictReader(f)]


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_runs_saves_loads_and_resumes_on_cuda(tmp_path: Path, name: str) -> None:
    if name == "a3c":
        pytest.skip("a3c is CPU only (forked workers share the model in CPU shared memory); it refuses device='cuda'")
    ex = example(name)
    options = dict(ex.fields, device="cuda", checkpoint_every=max(ex.steps // 4, 1), keep_checkpoints=0, **QUIET)
    agent = th.make(name, env=ex.env, seed=0, run_root=str(tmp_path / "a"), **options)
    assert agent.device.type == "cuda"
    agent.learn(ex.steps)
    batch = th.envs.make(ex.env, n_envs=8, seed=123).reset(seed=123)
    actions = agent.act(batch.to("cuda"))
    assert actions.device.type == "cuda"

    on_cuda = th.load(agent.run_dir / "final.pt")
    assert on_cuda.device.type == "cuda" and torch.equal(on_cuda.act(batch.to("cuda")), actions)
    on_cpu = th.load(agent.run_dir / "final.pt", device="cpu")
    assert on_cpu.device.type == "cpu"
    assert on_cpu.act(batch).shape == actions.shape

    # Resume from the second checkpoint on the same device: the same weights and log as the uninterrupted run.
    copy = tmp_path / "b" / agent.run_dir.name
    shutil.copytree(agent.run_dir, copy)
    (copy / "final.pt").unlink()
    for late in list_checkpoints(copy / "checkpoints")[2:]:
        late.unlink()
    resumed = th.resume(copy, **QUIET)
    resumed.learn(resumed.total_steps)
    assert leaves_equal(load_checkpoint(copy / "final.pt")["components"],
                        load_checkpoint(agent.run_dir / "final.pt")["components"])
    assert learning_rows(copy) == learning_rows(agent.run_dir)
