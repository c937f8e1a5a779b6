"""Encoders: from an observation, stored as :mod:`thorndike.core.spaces` says, to a float32 feature vector.

``make_encoder(space)`` picks the encoder from the observation space: a non-image Box is flattened, an image goes
through the Nature CNN, a Discrete index becomes a one-hot code, MultiBinary is flattened, and a packed Dict/Tuple
vector is split into its parts, each encoded, and concatenated. Every encoder maps [N, *storage_shape] to
float32 [N, out_features]; only the CNN has parameters.
"""

from __future__ import annotations

import math

import gymnasium as gym
import torch
from torch import Tensor, nn

from thorndike.core.networks import NatureCNN
from thorndike.core.spaces import SUPPORTED_PACKED, is_image, packed_layout

__all__ = ["Encoder", "FlattenEncoder", "OneHotEncoder", "ImageEncoder", "PackedEncoder", "make_encoder"]


class Encoder(nn.Module):
    """An observation encoder: forward(obs [N, *storage_shape]) -> float32 [N, out_features]."""

    out_features: int


class FlattenEncoder(Encoder):
    """Flattens everything after the batch dim and casts to float32 (a no-op for float32 vectors)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.out_features = math.prod(shape)

    def forward(self, obs: Tensor) -> Tensor:
        return obs.flatten(1).to(torch.float32)


def one_hot(index: Tensor, codes: Tensor) -> Tensor:
    """float32 [N, K] with a 1 where ``index`` [N] (any dtype holding integers) equals ``codes`` [K].

    Written as a comparison rather than F.one_hot: no range check, so no host synchronisation on accelerators; an
    index outside ``codes`` gives a row of zeros.
    """
    return (index.unsqueeze(-1) == codes).to(torch.float32)


class OneHotEncoder(Encoder):
    """One-hot code of a Discrete value: value ``start + i`` -> e_i, for i in 0..n-1."""

    def __init__(self, n: int, start: int = 0) -> None:
        super().__init__()
        self.out_features = n
        # The values themselves are compared, so the space's start needs no subtraction; not persistent: derived.
        self.register_buffer("codes", torch.arange(start, start + n), persistent=False)

    def forward(self, obs: Tensor) -> Tensor:
        return one_hot(obs.reshape(obs.shape[0]), self.codes)


class ImageEncoder(Encoder):
    """A Nature CNN over uint8 frames [N, C, H, W], [N, H, W, C] (channel-last, permuted here) or [N, H, W]."""

    def __init__(self, shape: tuple[int, ...], features: int = 512) -> None:
        super().__init__()
        if len(shape) == 2:
            self.layout, (height, width), channels = "hw", shape, 1
        elif shape[0] <= 4:
            self.layout, (channels, height, width) = "chw", shape
        else:
            self.layout, (height, width, channels) = "hwc", shape
        self.cnn = NatureCNN(channels, features, height, width)
        self.out_features = features

    def forward(self, obs: Tensor) -> Tensor:
        if self.layout == "hw":
            obs = obs.unsqueeze(1)
        elif self.layout == "hwc":
            obs = obs.permute(0, 3, 1, 2)
        return self.cnn(obs)


class PackedEncoder(Encoder):
    """Encodes a packed Dict/Tuple vector [N, packed_size]: Discrete parts one-hot, the rest as they are.

    Adjacent non-Discrete parts are taken as one slice, so a Dict of Boxes costs a single copy.
    """

    def __init__(self, space: gym.spaces.Dict | gym.spaces.Tuple) -> None:
        super().__init__()
        # Each segment: (offset, size, index into self.one_hots or -1 for a slice taken as is).
        self.segments: list[tuple[int, int, int]] = []
        self.one_hots = nn.ModuleList()
        for part in packed_layout(space):
            if isinstance(part.space, gym.spaces.Discrete):
                self.segments.append((part.offset, 1, len(self.one_hots)))
                self.one_hots.append(OneHotEncoder(int(part.space.n), int(part.space.start)))
            elif self.segments and self.segments[-1][2] == -1:
                offset, size, _ = self.segments[-1]
                self.segments[-1] = (offset, size + part.size, -1)
            else:
                self.segments.append((part.offset, part.size, -1))
        self.out_features = sum(
            size if which == -1 else self.one_hots[which].out_features for _, size, which in self.segments
        )

    def forward(self, obs: Tensor) -> Tensor:
        pieces = []
        for offset, size, which in self.segments:
            columns = obs[:, offset : offset + size]
            pieces.append(columns if which == -1 else self.one_hots[which](columns))
        return torch.cat(pieces, dim=1) if len(pieces) > 1 else pieces[0]


def make_encoder(space: gym.Space) -> Encoder:
    """The encoder for observations of ``space`` (see the module docstring); ValueError for other spaces."""
    if isinstance(space, gym.spaces.Box):
        return ImageEncoder(space.shape) if is_image(space) else FlattenEncoder(space.shape)
    if isinstance(space, gym.spaces.Discrete):
        return OneHotEncoder(int(space.n), int(space.start))
    if isinstance(space, gym.spaces.MultiBinary):
        return FlattenEncoder(tuple(space.shape))
    if isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
        return PackedEncoder(space)
    raise ValueError(
        f"no encoder for observation space {type(space).__name__} ({space}); supported: Box (flat or image), "
        f"Discrete, MultiBinary, and Dict/Tuple of {SUPPORTED_PACKED}"
    )
