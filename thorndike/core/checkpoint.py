"""Checkpoints written atomically and verified on load.

A file is ``MAGIC``, a SHA-256 of the payload, the payload's length, then the payload (``torch.save`` bytes).
It is written to a temporary file, fsynced and renamed, so a crash leaves either the old file or the new one,
never half of one. A truncated or corrupted file fails the length or hash check and is refused by name.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

MAGIC = b"THORNDIKE-CHECKPOINT-v1\n"
_HEADER = len(MAGIC) + 32 + 8


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used (missing, truncated, corrupted, or of another format)."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename, fsync of the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    return write_atomically(path, MAGIC, hashlib.sha256(payload).digest(), len(payload).to_bytes(8, "little"), payload)


def write_atomically(path: str | os.PathLike, *chunks: bytes) -> Path:
    """Replace ``path`` with the ``chunks`` one after another, so that a crash at any moment leaves the old file or
    the new one, whole: a temporary file beside it, fsynced, renamed over it, and the folder fsynced."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only left when writing failed (a full disk): never leave it behind
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, refusing a damaged file with its name."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise CheckpointError(f"checkpoint {path} is not a thorndike checkpoint (bad header); it may be truncated")
    if len(data) < _HEADER:
        raise CheckpointError(f"checkpoint {path} is truncated ({len(data)} bytes)")
    digest = data[len(MAGIC) : len(MAGIC) + 32]
    length = int.from_bytes(data[len(MAGIC) + 32 : _HEADER], "little")
    payload = data[_HEADER:]
    if len(payload) != length:
        raise CheckpointError(
            f"checkpoint {path} is truncated: payload has {len(payload)} of {length} bytes"
        )
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"checkpoint {path} is corrupted: its SHA-256 does not match")
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)


_STEP = re.compile(r"step-(\d+)\.pt$")


def checkpoint_path(folder: str | os.PathLike, step: int) -> Path:
    """The name of the checkpoint taken at ``step`` (zero-padded so names sort by step)."""
    return Path(folder) / f"step-{step:012d}.pt"


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Checkpoints in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _STEP.search(p.name)]
    return sorted(found, key=lambda p: int(_STEP.search(p.name).group(1)))


def load_latest_checkpoint(folder: str | os.PathLike, accept: Callable[[dict[str, Any]], str | None] | None = None,
                           candidates: list[Path] | None = None) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint in ``folder`` (or of ``candidates``, oldest first) that loads and that ``accept`` takes
    (it returns None, or why the checkpoint does not belong here); damaged and refused ones are reported by name
    and skipped."""
    candidates = list_checkpoints(folder) if candidates is None else candidates
    for path in reversed(candidates):
        try:
            state = load_checkpoint(path)
        except CheckpointError as err:
            warnings.warn(f"{err}; falling back to the previous checkpoint", stacklevel=2)
            continue
        except Exception as err:  # an unreadable pickle inside a valid frame is still a damaged file
            warnings.warn(f"checkpoint {path} could not be read ({err}); falling back", stacklevel=2)
            continue
        refused = accept(state) if accept is not None else None
        if refused is None:
            return path, state
        warnings.warn(f"checkpoint {path} does not belong to this run ({refused}); falling back to the previous "
                      "checkpoint", stacklevel=2)
    raise CheckpointError(f"no valid checkpoint of this run in {folder} (found {len(candidates)} file(s))")


def prune_checkpoints(folder: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (``keep`` <= 0 keeps all)."""
    if keep <= 0:
        return
    for path in list_checkpoints(folder)[:-keep]:
        path.unlink(missing_ok=True)
