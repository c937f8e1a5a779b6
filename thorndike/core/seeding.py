"""Seeding and the random-number states a checkpoint must carry for an exact resume."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """Seed Python, NumPy and torch's global generators; return a torch.Generator on ``device`` for the algorithm's
    sampling.

    Sampling actions and shuffling minibatches go through the returned generator, so that evaluation (which has
    its own) never shifts the training stream. It lives on the algorithm's device: torch refuses a CPU generator
    for sampling a CUDA tensor.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator(device=torch.device(device)).manual_seed(seed)


def rng_states(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every random state of the process (and of ``generator`` if given), for a checkpoint."""
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        states["generator"] = generator.get_state()
        states["generator_device"] = generator.device.type
    return states


def _numpy_state() -> tuple[Any, ...]:
    """NumPy's global state in plain Python values (its key as a list), so that ``torch.load`` reads a checkpoint
    with its default ``weights_only=True``, which refuses NumPy arrays."""
    kind, key, pos, has_gauss, cached_gaussian = np.random.get_state()
    return kind, key.tolist(), int(pos), int(has_gauss), float(cached_gaussian)


def set_rng_states(states: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore what :func:`rng_states` captured."""
    random.setstate(states["python"])
    kind, key, *rest = states["numpy"]  # the key is a list (an array in first-format checkpoints)
    np.random.set_state((kind, np.asarray(key, dtype=np.uint32), *rest))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    if generator is not None and "generator" in states:
        # A generator's state is device-specific (a CUDA state cannot seed a CPU generator): a checkpoint loaded
        # on another kind of device keeps the new generator's seed, so it goes on correctly but not bit for bit.
        if states.get("generator_device", "cpu") == generator.device.type:
            generator.set_state(states["generator"])
