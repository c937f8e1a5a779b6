"""Memory a config will allocate, checked before it is allocated.

A count that sizes memory (env copies, rollout length, runs, table sizes, layer widths) is refused at construction
when what it would allocate is more than ``MEMORY_FRACTION`` of the machine's memory (RAM for the CPU, the GPU's own
memory for CUDA): one :class:`~thorndike.config.ConfigError` naming the fields, their values and the limit, instead
of a raw allocation failure, or an allocation that succeeds and leaves the machine swapping or the process killed.
The estimates count the big tensors only (they are products of the config's counts); everything else a run holds is
small beside them.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch

from thorndike.config import ConfigError

__all__ = ["GYMNASIUM_COPY_BYTES", "MAX_GYMNASIUM_COPIES", "MEMORY_FRACTION", "PROBE_COPIES", "env_copies_bytes",
           "memory_budget", "require_memory", "tensor_bytes"]

MEMORY_FRACTION = 0.5
"""What one allocation may take of the machine's (or the GPU's) memory."""

GYMNASIUM_COPY_BYTES = 32 * 1024
"""A generous bound on one Gymnasium env copy in this process (measured: 4-26 KB for the classic-control and toy-text
envs, pickled into every checkpoint)."""

MAX_GYMNASIUM_COPIES = 65_536
"""Gymnasium copies stepped in one process: building one takes 0.5-5 ms, so more would take minutes before the
first step (native torch envs have no such bound, only the memory one)."""

PROBE_COPIES = 4096
"""Up to this many env copies are built without an estimate (any env's copies fit); beyond, one copy is built first
to measure an observation."""


def memory_budget(device: torch.device | str = "cpu") -> tuple[int, int]:
    """(bytes one allocation may take, the memory it is a fraction of) on ``device``."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(device.index or 0).total_memory
    else:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):  # no sysconf (Windows): assume a small machine
            total = 8 * 2**30
    return int(total * MEMORY_FRACTION), int(total)


def tensor_bytes(*shape: int, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of a tensor of this shape and dtype (Python ints: no overflow for huge shapes)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return math.prod(shape) * itemsize


def require_memory(what: str, nbytes: int, device: torch.device | str, fields: dict[str, Any],
                   detail: str = "") -> None:
    """Refuse ``fields`` (the config's ``{name: value}`` that size it) when ``what`` would take ``nbytes`` > the
    budget on ``device``. ``detail`` says how the estimate is made (e.g. "16 states x 4 actions x 8 bytes")."""
    budget, total = memory_budget(device)
    if nbytes <= budget:
        return
    kind = "GPU memory" if torch.device(device).type == "cuda" else "RAM"
    values = ", ".join(f"{name}={value!r}" for name, value in fields.items())
    names = " or ".join(fields)
    raise ConfigError(f"invalid config: {values} would need about {_size(nbytes)} for {what}"
                      f"{f' ({detail})' if detail else ''}; at most {_size(budget)} may be allocated here "
                      f"({MEMORY_FRACTION:.0%} of this machine's {_size(total)} of {kind}): lower {names}")


def env_copies_bytes(n_copies: int, observation_bytes: int, gymnasium: bool) -> int:
    """An upper estimate of ``n_copies`` env copies: each copy's observation several times over (obs, final_obs,
    the rollout's copies) and, for a Gymnasium copy, the Python env object."""
    return n_copies * (8 * observation_bytes + 64 + (GYMNASIUM_COPY_BYTES if gymnasium else 0))


def _size(nbytes: int) -> str:
    if nbytes >= 2**40:
        return f"{nbytes / 2**40:,.1f} TiB"
    if nbytes >= 2**30:
        return f"{nbytes / 2**30:.1f} GiB"
    return f"{nbytes / 2**20:.1f} MiB"
