"""Checkpoints written atomically and verified on load, as plain ``torch.save`` files that standard tools read.

A checkpoint is what ``torch.save`` writes (a zip archive: ``torch.load(path)`` reads it like any other) with one
addition: the archive's comment, the last bytes of the file that zip readers skip, is ``thorndike-sha256 <hex>``,
the SHA-256 of every byte before it (``head -c -81 final.pt | sha256sum`` checks it by hand). The file is written to
a temporary file, fsynced and renamed, so a crash leaves either the old file or the new one, never half of one; a
truncated file has lost its trailer and a corrupted one fails the hash, and either is refused by name. The hash
travels inside the file, so a copied checkpoint stays verifiable with no second file to keep in step.

Files of the first format (earlier thorndike versions: ``LEGACY_MAGIC``, the SHA-256 and length of the payload, then the
``torch.save`` bytes, which ``torch.load`` cannot read directly) are still read and verified.
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

LEGACY_MAGIC = b"THORNDIKE-CHECKPOINT-v1\n"
_LEGACY_HEADER = len(LEGACY_MAGIC) + 32 + 8
TRAILER_TAG = b"thorndike-sha256 "
_TRAILER = len(TRAILER_TAG) + 64  # the tag and the hex digest: 81 bytes
_ZIP_START = b"PK\x03\x04"  # a zip archive's first local file header
_ZIP_END = b"PK\x05\x06"  # its end-of-central-directory record: 22 bytes and the comment, last in the file


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used (missing, truncated, corrupted, or of another format)."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename, fsync of the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return write_atomically(path, *sign(buffer.getvalue()))


def sign(archive: bytes) -> tuple[bytes, bytes]:
    """The ``torch.save`` zip ``archive`` with its comment set to the SHA-256 trailer, as (body, trailer)."""
    if archive[-22:-18] != _ZIP_END or archive[-2:] != b"\x00\x00":
        raise CheckpointError("torch.save wrote an archive without a plain end record; cannot sign it")
    body = archive[:-2] + _TRAILER.to_bytes(2, "little")  # the end record's comment length
    return body, TRAILER_TAG + hashlib.sha256(body).hexdigest().encode()


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
    """Read a checkpoint written by :func:`save_checkpoint` (or in the first format), refusing a damaged file with
    its name."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    data = path.read_bytes()
    if data.startswith(LEGACY_MAGIC):
        data = _legacy_payload(path, data)
    elif data.startswith(_ZIP_START):
        _verify(path, data)
    else:
        raise CheckpointError(f"checkpoint {path} is not a thorndike checkpoint (neither a torch.save archive nor "
                              "the first checkpoint format); it may be truncated")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def _verify(path: Path, data: bytes) -> None:
    trailer = data[-_TRAILER:]
    if len(data) < _TRAILER + 22 or not trailer.startswith(TRAILER_TAG):
        raise CheckpointError(f"checkpoint {path} is truncated: its SHA-256 trailer is missing (a torch.save file "
                              "not written by thorndike has none either: torch.load reads those)")
    if hashlib.sha256(data[:-_TRAILER]).hexdigest().encode() != trailer[len(TRAILER_TAG):]:
        raise CheckpointError(f"checkpoint {path} is corrupted: its SHA-256 does not match")


def _legacy_payload(path: Path, data: bytes) -> bytes:
    """The ``torch.save`` bytes of a first-format file, checked against its length and hash."""
    if len(data) < _LEGACY_HEADER:
        raise CheckpointError(f"checkpoint {path} is truncated ({len(data)} bytes)")
    digest = data[len(LEGACY_MAGIC) : len(LEGACY_MAGIC) + 32]
    length = int.from_bytes(data[len(LEGACY_MAGIC) + 32 : _LEGACY_HEADER], "little")
    payload = data[_LEGACY_HEADER:]
    if len(payload) != length:
        raise CheckpointError(f"checkpoint {path} is truncated: payload has {len(payload)} of {length} bytes")
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"checkpoint {path} is corrupted: its SHA-256 does not match")
    return payload


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
