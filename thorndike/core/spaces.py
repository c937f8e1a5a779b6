"""How an observation space is stored as one tensor per observation, and how structured observations are packed.

Buffers and models see every observation as a single tensor. Box, Discrete and MultiBinary observations keep their
natural shape and dtype (uint8 images stay bytes, so image replay is four times smaller than float32); Dict and Tuple
observations are *packed* into one float32 vector: each sub-space flattened in order (Dict keys in the space's own
order), a Discrete sub-space as one number, its raw value. Turning those numbers into features (one-hot codes, say)
is the model's job, in :mod:`thorndike.core.encoders`, which reads the same :func:`packed_layout`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

__all__ = ["Part", "storage_spec", "packed_layout", "packed_size", "pack", "is_image", "is_float_box", "scale_action",
           "unscale_action", "check_bounded_box"]

SUPPORTED_PACKED = "Box (not an image), Discrete, MultiBinary and nested Dict/Tuple"
# float32 represents every integer up to 2**24 exactly; a Discrete value past that would be rounded when packed.
_FLOAT32_EXACT_INTEGERS = 2**24


@dataclass(frozen=True)
class Part:
    """One leaf sub-space of a Dict/Tuple observation and where it lies in the packed vector."""

    path: str  # e.g. "position", or "0.velocity" for key "velocity" of the Tuple's first entry
    space: gym.Space
    offset: int
    size: int

    @property
    def slice(self) -> slice:
        """Its columns in the packed vector [N, packed_size]."""
        return slice(self.offset, self.offset + self.size)


def is_float_box(space: gym.Space) -> bool:
    """A Box of floating-point values (stored as float32)."""
    return isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating)


def is_image(space: gym.Space) -> bool:
    """A uint8 Box shaped as an image: [C, H, W] with C <= 4, [H, W, C] with C in (1, 3, 4), or [H, W]."""
    if not isinstance(space, gym.spaces.Box) or space.dtype != np.uint8:
        return False
    shape = space.shape
    if len(shape) == 2:
        return True
    return len(shape) == 3 and (shape[0] <= 4 or shape[-1] in (1, 3, 4))


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.zeros((), dtype=dtype)).dtype


def storage_spec(space: gym.Space) -> tuple[tuple[int, ...], torch.dtype]:
    """(shape, dtype) of one observation of ``space`` as stored in a tensor (the batch dim excluded).

    Float Box -> (shape, float32); integer Box -> (shape, its dtype, uint8 kept); Discrete -> ((), int64);
    MultiBinary -> (shape, int8); Dict/Tuple -> ((packed_size,), float32).
    """
    if isinstance(space, gym.spaces.Box):
        dtype = torch.float32 if is_float_box(space) else _torch_dtype(space.dtype)
        return tuple(space.shape), dtype
    if isinstance(space, gym.spaces.Discrete):
        return (), torch.int64
    if isinstance(space, gym.spaces.MultiBinary):
        return tuple(space.shape), torch.int8
    if isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
        return (packed_size(space),), torch.float32
    raise ValueError(
        f"observation space {type(space).__name__} ({space}) is not supported; supported: Box, Discrete, "
        f"MultiBinary, and Dict/Tuple of {SUPPORTED_PACKED}"
    )


def _children(space: gym.spaces.Dict | gym.spaces.Tuple) -> Iterator[tuple[str, gym.Space]]:
    if isinstance(space, gym.spaces.Dict):
        yield from ((str(key), sub) for key, sub in space.spaces.items())
    else:
        yield from ((str(index), sub) for index, sub in enumerate(space.spaces))


def _leaf_size(path: str, space: gym.Space) -> int:
    """Width of a leaf in the packed vector; a ValueError naming the path for what cannot be packed."""
    if isinstance(space, gym.spaces.Box):
        if is_image(space):
            raise ValueError(
                f"observation sub-space '{path}' is an image Box {space}: images are supported only as the whole "
                f"observation; a Dict/Tuple observation may contain {SUPPORTED_PACKED}"
            )
        return int(np.prod(space.shape))
    if isinstance(space, gym.spaces.Discrete):
        if max(abs(int(space.start)), abs(int(space.start + space.n))) > _FLOAT32_EXACT_INTEGERS:
            raise ValueError(f"observation sub-space '{path}' ({space}) has values too large for float32 packing")
        return 1
    if isinstance(space, gym.spaces.MultiBinary):
        return int(np.prod(space.shape))
    raise ValueError(
        f"observation sub-space '{path}' is {type(space).__name__} ({space}), which cannot be packed; "
        f"a Dict/Tuple observation may contain {SUPPORTED_PACKED}"
    )


def _leaves(space: gym.Space, path: str) -> Iterator[tuple[str, gym.Space]]:
    if isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
        for name, sub in _children(space):
            yield from _leaves(sub, f"{path}.{name}" if path else name)
    else:
        yield path, space


def packed_layout(space: gym.spaces.Dict | gym.spaces.Tuple) -> list[Part]:
    """The leaves of a Dict/Tuple space in packing order, each with its columns in the packed vector."""
    if not isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
        raise ValueError(f"packed_layout needs a Dict or Tuple space, got {type(space).__name__} ({space})")
    parts: list[Part] = []
    offset = 0
    for path, leaf in _leaves(space, ""):
        size = _leaf_size(path, leaf)
        parts.append(Part(path, leaf, offset, size))
        offset += size
    if not parts:
        raise ValueError(f"observation space {space} has no sub-spaces to pack")
    return parts


def packed_size(space: gym.spaces.Dict | gym.spaces.Tuple) -> int:
    """Length of the packed vector of one observation."""
    last = packed_layout(space)[-1]
    return last.offset + last.size


def _flat_leaves(space: gym.Space, obs: Any) -> Iterator[Tensor]:
    """Each leaf of a batched structured observation as float32 [N, leaf_size], in packing order."""
    if isinstance(space, gym.spaces.Dict):
        if not isinstance(obs, Mapping):
            raise ValueError(f"a Dict observation batch must be a mapping, got {type(obs).__name__}")
        for key, sub in space.spaces.items():
            yield from _flat_leaves(sub, obs[key])
    elif isinstance(space, gym.spaces.Tuple):
        if not isinstance(obs, Sequence):
            raise ValueError(f"a Tuple observation batch must be a tuple, got {type(obs).__name__}")
        for sub, sub_obs in zip(space.spaces, obs, strict=True):
            yield from _flat_leaves(sub, sub_obs)
    else:
        batch = obs if isinstance(obs, Tensor) else torch.from_numpy(np.asarray(obs))
        yield batch.reshape(batch.shape[0], -1).to(torch.float32)


def pack(
    space: gym.spaces.Dict | gym.spaces.Tuple, obs_batch: Mapping[str, Any] | Sequence[Any],
    device: torch.device | str | None = None,
) -> Tensor:
    """A batch of Dict/Tuple observations, as a Gymnasium vector env returns them, as float32 [N, packed_size].

    ``obs_batch`` is a dict (Dict space) or tuple (Tuple space) of arrays or tensors with a leading batch dim N,
    nested like the space. Discrete entries become their raw value (one number), the rest are flattened in order.
    """
    packed_layout(space)  # the same errors as storage_spec for what cannot be packed
    packed = torch.cat(list(_flat_leaves(space, obs_batch)), dim=1)
    return packed if device is None else packed.to(device)


def is_structured(space: gym.Space) -> bool:
    """A Dict or Tuple space, whose observations are packed into one float vector."""
    return isinstance(space, gym.spaces.Dict | gym.spaces.Tuple)


def batch_of_one(space: gym.Space, obs: Any) -> Any:
    """One unbatched observation of ``space`` with a batch dim of 1 on every leaf (what :func:`pack` takes)."""
    if isinstance(space, gym.spaces.Dict):
        return {key: batch_of_one(sub, obs[key]) for key, sub in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(batch_of_one(sub, sub_obs) for sub, sub_obs in zip(space.spaces, obs, strict=True))
    return torch.as_tensor(np.asarray(obs)).unsqueeze(0)


def is_single(space: gym.spaces.Dict | gym.spaces.Tuple, obs: Any) -> bool:
    """Whether a structured observation is one observation (its first leaf has the leaf space's shape) rather than
    a batch."""
    while isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
        first = next(iter(space.spaces.values())) if isinstance(space, gym.spaces.Dict) else space.spaces[0]
        obs = obs[next(iter(space.spaces))] if isinstance(space, gym.spaces.Dict) else obs[0]
        space = first
    return tuple(np.shape(obs)) == tuple(space.shape or ())


# ---- continuous actions: [-1, 1] inside the algorithm, the space's bounds at the env ---------------------------------


def check_bounded_box(space: gym.Space) -> None:
    """Refuse a Box action space the continuous learners cannot squash into: not a float Box, or unbounded."""
    if not is_float_box(space):
        raise ValueError(f"the action space {space} is not a Box of floats")
    if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
        raise ValueError(f"the action space {space} has infinite bounds; actions in [-1, 1] cannot be scaled to it")


def _bounds(space: gym.spaces.Box, like: Tensor) -> tuple[Tensor, Tensor]:
    low = torch.as_tensor(space.low, dtype=like.dtype, device=like.device)
    high = torch.as_tensor(space.high, dtype=like.dtype, device=like.device)
    return low, high


def scale_action(action: Tensor, space: gym.spaces.Box) -> Tensor:
    """[-1, 1] -> [low, high], per dimension: low + (a + 1) (high - low) / 2 (so -1 is low and 1 is high, also for
    asymmetric bounds). The continuous learners act, store and learn in [-1, 1] (a tanh squashes their actors into
    it); this is done once, where actions leave for the env."""
    low, high = _bounds(space, action)
    return low + (action + 1.0) * (0.5 * (high - low))


def unscale_action(action: Tensor, space: gym.spaces.Box) -> Tensor:
    """[low, high] -> [-1, 1], the inverse of :func:`scale_action`: 2 (a - low) / (high - low) - 1."""
    low, high = _bounds(space, action)
    return 2.0 * (action - low) / (high - low) - 1.0
