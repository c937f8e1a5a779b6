"""Checkpoint files: plain torch.save files, atomic, verified, refused by name when damaged, newest valid one found;
the first format still loads."""

from __future__ import annotations

import hashlib
import io
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import thorndike as th
from thorndike.core.checkpoint import (
    CheckpointError,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    load_latest_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from thorndike.core.seeding import rng_states, set_rng_states
from thorndike.registry import example


def test_round_trip_and_no_temporary_left(tmp_path: Path) -> None:
    state = {"w": torch.arange(5.0), "step": 7, "nested": {"a": [1, 2]}}
    path = save_checkpoint(state, tmp_path / "c.pt")
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["w"], state["w"]) and loaded["step"] == 7 and loaded["nested"] == {"a": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:10], "truncated|bad header"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 0xFF]), "corrupted"),
        (lambda b: b"garbage", "not a thorndike checkpoint"),
    ],
)
def test_damaged_files_are_refused_by_name(tmp_path: Path, damage, message: str) -> None:
    path = save_checkpoint({"x": torch.ones(100)}, tmp_path / "c.pt")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_latest_valid_falls_back_past_damaged_files(tmp_path: Path) -> None:
    for step in (100, 200, 300):
        save_checkpoint({"step": step}, checkpoint_path(tmp_path, step))
    newest = checkpoint_path(tmp_path, 300)
    newest.write_bytes(newest.read_bytes()[:-3])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path, state = load_latest_checkpoint(tmp_path)
    assert state["step"] == 200 and path == checkpoint_path(tmp_path, 200)
    assert any(str(newest) in str(w.message) for w in caught)


def test_no_valid_checkpoint_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no valid checkpoint"):
        load_latest_checkpoint(tmp_path)


def test_checkpoints_sort_by_step_and_prune_keeps_newest(tmp_path: Path) -> None:
    for step in (5, 1000, 20):
        save_checkpoint({"step": step}, checkpoint_path(tmp_path, step))
    assert [load_checkpoint(p)["step"] for p in list_checkpoints(tmp_path)] == [5, 20, 1000]
    prune_checkpoints(tmp_path, keep=2)
    assert [load_checkpoint(p)["step"] for p in list_checkpoints(tmp_path)] == [20, 1000]


def test_a_full_disk_leaves_no_temporary_file_and_the_previous_checkpoint_intact(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import errno

    import thorndike.core.checkpoint as checkpoint_module

    path = tmp_path / "checkpoints" / "step-000000000001.pt"
    save_checkpoint({"w": torch.arange(4.0)}, path)
    before = path.read_bytes()

    class FillsUp:
        """A file that takes 100 bytes, then fails as a full disk does."""

        def __init__(self, real: Any) -> None:
            self.real, self.written = real, 0

        def write(self, data: bytes) -> int:
            room = 100 - self.written
            if len(data) > room:
                self.real.write(data[:room])
                self.written = 100
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(data)
            return self.real.write(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

        def __enter__(self) -> FillsUp:
            return self

        def __exit__(self, *exc: Any) -> None:
            self.real.close()

    monkeypatch.setattr(checkpoint_module, "open", lambda *a, **k: FillsUp(builtins.open(*a, **k)), raising=False)
    with pytest.raises(OSError) as full:
        save_checkpoint({"w": torch.arange(1000.0)}, path)
    assert full.value.errno == errno.ENOSPC
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no .step-...tmp-<pid> left behind
    assert path.read_bytes() == before
    assert torch.equal(load_checkpoint(path)["w"], torch.arange(4.0))


def test_a_checkpoint_is_a_plain_torch_file_with_its_hash_in_the_zip_comment(tmp_path: Path) -> None:
    state = {"w": torch.arange(5.0), "step": 7, "rng": rng_states()}
    path = save_checkpoint(state, tmp_path / "final.pt")
    loaded = torch.load(path)  # torch's defaults (weights_only=True): no NumPy array or other pickled class inside
    assert torch.equal(loaded["w"], state["w"]) and loaded["step"] == 7
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        comment = archive.comment
    assert comment == data[-len(comment):] and comment.startswith(b"thorndike-sha256 ")
    assert comment.split()[1].decode() == hashlib.sha256(data[: -len(comment)]).hexdigest()  # by hand, as documented


def test_a_torch_file_without_the_hash_is_refused_as_incomplete(tmp_path: Path) -> None:
    torch.save({"x": 1}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="plain.pt is truncated: its SHA-256 trailer is missing"):
        load_checkpoint(tmp_path / "plain.pt")


def write_first_format(state: dict, path: Path) -> bytes:
    """A first-format checkpoint, as earlier versions wrote it: magic, SHA-256 and length of the payload, payload."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    data = b"THORNDIKE-CHECKPOINT-v1\n" + hashlib.sha256(payload).digest() + len(payload).to_bytes(8, "little")
    path.write_bytes(data + payload)
    return data + payload


def test_first_format_checkpoints_still_load_and_are_still_verified(tmp_path: Path) -> None:
    numpy_state = np.random.get_state()  # the first format stored NumPy's state with its key as an array
    data = write_first_format({"w": torch.ones(3), "rng": {"numpy": numpy_state}}, tmp_path / "old.pt")
    loaded = load_checkpoint(tmp_path / "old.pt")
    assert torch.equal(loaded["w"], torch.ones(3))
    np.random.seed(123)
    set_rng_states({**rng_states(), "numpy": loaded["rng"]["numpy"]})
    assert np.random.get_state()[2] == numpy_state[2]
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state[1])
    (tmp_path / "old.pt").write_bytes(data[:-5])
    with pytest.raises(CheckpointError, match="old.pt is truncated"):
        load_checkpoint(tmp_path / "old.pt")


@pytest.mark.parametrize("algo", ["q_learning", "ppo"])
def test_a_runs_final_file_loads_with_plain_torch_load(tmp_path: Path, algo: str) -> None:
    ex = example(algo)
    agent = th.make(algo, env=ex.env, run_root=str(tmp_path), progress=False, tensorboard=False, pictures=False,
                    **ex.fields).learn(ex.steps)
    plain = torch.load(agent.run_dir / "final.pt")  # what a user types first
    assert plain["algo"] == algo and plain["counters"]["global_step"] == agent.global_step
    plain_tensors, verified_tensors = (torch.utils._pytree.tree_leaves(state["components"])
                                       for state in (plain, load_checkpoint(agent.run_dir / "final.pt")))
    assert plain_tensors and all(torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b
                                 for a, b in zip(plain_tensors, verified_tensors, strict=True))
