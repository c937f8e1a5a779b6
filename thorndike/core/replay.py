"""Experience replay: a ring buffer of transitions, a sum tree, prioritized replay, n-step returns.

Notes: experience replay (000 L287-L290, 001 L80-L94, 003 L389-L391): store each transition (s, a, r, s') and learn
from uniformly drawn minibatches, so that updates reuse data and consecutive, correlated steps do not follow each
other. Prioritized replay (003 L470-L504, Schaul et al. 2016):

    p_i = |delta_i| + eps,   P(i) = p_i^alpha / sum_k p_k^alpha,   w_i = (N P(i))^-beta / max_j w_j

with beta annealed to 1 by the caller (the weights correct the bias of non-uniform sampling fully only at beta = 1).
The max-normalisation of the weights is not in the notes; it is taken, as in Schaul et al.'s Algorithm 1, over the
sampled minibatch, so weights only scale updates down. n-step returns (003 L329-L339): a sampled transition carries

    R = sum_{k<m} gamma^k r_{t+k},   s' = the observation after step t+m-1,   discount = gamma^m

with m = min(n, steps until the episode ends (inclusive), steps until the newest stored step (inclusive)): the
target is ``R + discount * (1 - terminated) * V(s')`` (no bootstrap after a termination; after a truncation the
bootstrap is from the true last observation, which the caller stored as ``next_obs``). These are the targets of
:func:`thorndike.core.returns.n_step_targets` over the stream of each env copy.

Layout. ``n_envs`` copies step in lockstep, so each :meth:`ReplayBuffer.add` writes one row of ``[rows, n_envs, ...]``
tensors (rows = capacity // n_envs); the successor of a transition is the next row of the same column, which is what
makes n-step windows a few gathers. A transition's *index* is ``row * n_envs + env``.

Cost. ``add`` is one copy per field; ``sample`` is one ``randint`` and one gather per field (n gathers of rewards
and done flags with n-step returns). Neither waits for the device: the counters that decide what is filled are
Python ints. A prioritized ``add`` and ``update_priorities`` also walk the sum tree, one gather and one write per
level (log2 capacity levels), again without a host synchronisation.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from thorndike.core.resources import require_memory, tensor_bytes
from thorndike.core.spaces import storage_spec

__all__ = ["PrioritizedReplayBuffer", "ReplayBuffer", "SumTree", "action_spec"]

Spec = tuple[tuple[int, ...], torch.dtype]


def action_spec(space: gym.Space) -> Spec:
    """(shape, dtype) of one stored action: a Discrete action as an int64 index, a Box action as float32."""
    if isinstance(space, gym.spaces.Discrete):
        return (), torch.int64
    if isinstance(space, gym.spaces.Box):
        return tuple(space.shape), torch.float32
    raise ValueError(f"action space {type(space).__name__} is not supported by the replay buffer; "
                     "supported: Discrete, Box")


def _spec(value: gym.Space | Spec, what: str) -> Spec:
    if isinstance(value, gym.Space):
        return storage_spec(value) if what == "observation" else action_spec(value)
    if (isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], torch.dtype)
            and all(isinstance(d, int) and d >= 1 for d in value[0])):
        return tuple(value[0]), value[1]
    raise ValueError(f"{what} must be a gymnasium space or a (shape, torch dtype) pair, got {value!r}")


class ReplayBuffer:
    """Transitions of ``n_envs`` lockstep env copies in a preallocated ring on ``device``; uniform sampling.

    ``observation`` and ``action`` are gymnasium spaces or ``(shape, dtype)`` pairs (:func:`storage_spec`,
    :func:`action_spec`). Observations are stored raw (normalisation is the model's, see ``docs/architecture.md``).
    ``capacity`` is rounded down to a multiple of ``n_envs``; when full, each ``add`` overwrites the oldest row.
    ``field`` is the config field that sets ``capacity``: a capacity the machine cannot hold is refused naming it.

    Checkpointing is the caller's choice: :attr:`nbytes` says what :meth:`state_dict` would write. A run resumed
    without it starts with an empty buffer (refilled for ``learning_starts`` steps if the caller's loop says so), so
    it goes on correctly but not bit for bit like an uninterrupted run.
    """

    def __init__(
        self,
        capacity: int,
        observation: gym.Space | Spec,
        action: gym.Space | Spec,
        n_envs: int = 1,
        device: torch.device | str = "cpu",
        n_step: int = 1,
        gamma: float = 0.99,
        field: str = "buffer_size",
    ) -> None:
        if not isinstance(n_envs, int) or n_envs < 1:
            raise ValueError(f"n_envs must be an int >= 1, got {n_envs!r}")
        if not isinstance(capacity, int) or capacity < n_envs:
            raise ValueError(f"{field} must be an int >= n_envs ({n_envs}), got {capacity!r}")
        if not isinstance(n_step, int) or n_step < 1:
            raise ValueError(f"n_step must be an int >= 1, got {n_step!r}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
        self.obs_shape, self.obs_dtype = _spec(observation, "observation")
        self.action_shape, self.action_dtype = _spec(action, "action")
        self.n_envs, self.rows = n_envs, capacity // n_envs
        self.capacity = self.rows * n_envs
        self.n_step, self.gamma = n_step, float(gamma)
        self.device = torch.device(device)
        fields = self._fields()
        per = sum(tensor_bytes(*shape, dtype=dtype) for shape, dtype in fields.values()) + self._extra_bytes_per()
        require_memory("the replay buffer", self.capacity * per, self.device, {field: capacity},
                       f"{per:,} bytes per transition")
        self.data = {name: torch.zeros((self.rows, n_envs, *shape), dtype=dtype, device=self.device)
                     for name, (shape, dtype) in fields.items()}
        # gamma^m for the m <= n steps of a window, so a sampled discount is one gather.
        self._gamma_pow = self.gamma ** torch.arange(n_step + 1, dtype=torch.float64, device=self.device)
        self._gamma_pow = self._gamma_pow.to(torch.float32)
        self.pos = 0  # the row the next add writes
        self.full = False

    def _fields(self) -> dict[str, Spec]:
        obs = (self.obs_shape, self.obs_dtype)
        return {"obs": obs, "actions": (self.action_shape, self.action_dtype), "rewards": ((), torch.float32),
                "next_obs": obs, "terminated": ((), torch.bool), "truncated": ((), torch.bool)}

    def _extra_bytes_per(self) -> int:
        return 0

    def __len__(self) -> int:
        """Transitions stored."""
        return self.capacity if self.full else self.pos * self.n_envs

    @property
    def nbytes(self) -> int:
        """Bytes the buffer holds (what :meth:`state_dict` writes to a checkpoint)."""
        return sum(t.nbytes for t in self.data.values())

    def add(self, obs: Tensor, actions: Tensor, rewards: Tensor, next_obs: Tensor, terminated: Tensor,
            truncated: Tensor) -> None:
        """Store one vectorised step, each argument ``[n_envs, ...]``.

        ``next_obs`` must be the TRUE next observation: the env's ``info["final_obs"]`` (``obs`` where no episode
        ended), not the observation autoreset put in its place.
        """
        if tuple(obs.shape) != (self.n_envs, *self.obs_shape) or tuple(next_obs.shape) != tuple(obs.shape):
            raise ValueError(f"obs and next_obs must be {[self.n_envs, *self.obs_shape]}, got {list(obs.shape)} "
                             f"and {list(next_obs.shape)}")
        row = self.pos
        for name, value in (("obs", obs), ("actions", actions), ("rewards", rewards), ("next_obs", next_obs),
                            ("terminated", terminated), ("truncated", truncated)):
            self.data[name][row] = value
        self.pos = (row + 1) % self.rows
        self.full = self.full or self.pos == 0
        self._added(row)

    def _added(self, row: int) -> None:
        """Hook for the prioritized buffer: ``row`` was just written."""

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``batch_size`` transitions drawn uniformly with replacement from the filled part.

        Returns ``obs``, ``actions``, ``rewards`` (the n-step discounted sum), ``next_obs`` (the observation to
        bootstrap from), ``terminated`` / ``truncated`` (how the window ended, if it ended an episode), ``discounts``
        (gamma^m, to multiply the bootstrap with) and ``indices`` (``[B]`` int64).
        """
        size = self._check_sample(batch_size)
        gen_device = generator.device if generator is not None else self.device
        indices = torch.randint(0, size, (batch_size,), generator=generator, device=gen_device).to(self.device)
        return self.gather(indices)

    def _check_sample(self, batch_size: int) -> int:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        size = len(self)
        if size == 0:
            raise ValueError("cannot sample from an empty replay buffer: add transitions first (learning_starts)")
        return size

    def gather(self, indices: Tensor) -> dict[str, Tensor]:
        """The transitions (n-step windows) that start at ``indices`` (``[B]`` int64, each < ``len(self)``)."""
        data, n_envs = self.data, self.n_envs
        row, env = indices // n_envs, indices % n_envs
        batch = {"obs": data["obs"][row, env], "actions": data["actions"][row, env], "indices": indices}
        if self.n_step == 1:
            last = row
            batch["rewards"] = data["rewards"][row, env]
            batch["discounts"] = self._gamma_pow[1].expand(indices.shape[0])
        else:
            # Walk each window forward; it closes at an episode end, at the newest stored step, or after n steps.
            newest = (self.pos - 1) % self.rows
            ahead = (newest - row) % self.rows  # steps of this column stored after the window's first
            rewards = torch.zeros(indices.shape[0], dtype=torch.float32, device=self.device)
            alive = torch.ones_like(indices, dtype=torch.bool)
            last = row
            for k in range(self.n_step):
                r_k = (row + k) % self.rows
                rewards = rewards + torch.where(alive, self._gamma_pow[k] * data["rewards"][r_k, env], 0.0)
                last = torch.where(alive, r_k, last)
                ends = data["terminated"][r_k, env] | data["truncated"][r_k, env] | (ahead == k)
                alive = alive & ~ends
            batch["rewards"] = rewards
            batch["discounts"] = self._gamma_pow[(last - row) % self.rows + 1]
        batch["next_obs"] = data["next_obs"][last, env]
        batch["terminated"] = data["terminated"][last, env]
        batch["truncated"] = data["truncated"][last, env]
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The stored tensors (references, not copies: write them before the next ``add``) and the counters."""
        return {"data": dict(self.data), "pos": self.pos, "full": self.full}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, tensor in self.data.items():
            saved = state["data"][name]
            if tuple(saved.shape) != tuple(tensor.shape) or saved.dtype != tensor.dtype:
                raise ValueError(f"checkpoint replay field {name!r} is {tuple(saved.shape)} {saved.dtype}; this "
                                 f"buffer's is {tuple(tensor.shape)} {tensor.dtype} (rows, n_envs, ...)")
            tensor.copy_(saved)
        self.pos, self.full = int(state["pos"]), bool(state["full"])


class SumTree:
    """A binary tree of sums over ``capacity`` non-negative leaves, held in one float64 tensor; all ops batched.

    Node 1 is the root, node i has children 2i and 2i + 1, and the leaves are nodes ``L .. 2L - 1`` (L, the capacity
    rounded up to a power of two; the padding leaves stay 0). A parent is always recomputed as the sum of its two
    children, never incremented, so rounding errors cannot accumulate over updates.
    """

    def __init__(self, capacity: int, device: torch.device | str = "cpu") -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
        self.capacity = capacity
        self.depth = max(1, math.ceil(math.log2(capacity)))
        self.n_leaves = 2**self.depth
        self.tree = torch.zeros(2 * self.n_leaves, dtype=torch.float64, device=device)

    def total(self) -> Tensor:
        """The sum of all leaves (a 0-dim tensor: no host synchronisation)."""
        return self.tree[1]

    def leaves(self, indices: Tensor | None = None) -> Tensor:
        """The leaves at ``indices`` (all ``capacity`` leaves when None)."""
        if indices is None:
            return self.tree[self.n_leaves : self.n_leaves + self.capacity]
        return self.tree[indices + self.n_leaves]

    def update(self, indices: Tensor, priorities: Tensor) -> None:
        """Set the leaves at ``indices`` (``[B]`` int64) to ``priorities`` (``[B]``, >= 0, finite), then their
        ancestors. A repeated index gets the largest of its priorities (deterministic on every device)."""
        node = indices + self.n_leaves
        self.tree.scatter_reduce_(0, node, priorities.to(self.tree.dtype), reduce="amax", include_self=False)
        for _ in range(self.depth):
            node = node // 2
            self.tree[node] = self.tree[2 * node] + self.tree[2 * node + 1]

    def find(self, prefix_sums: Tensor) -> Tensor:
        """For each prefix sum s in [0, total), the leaf i with sum(leaves[:i]) <= s < sum(leaves[:i + 1]).

        The batch descends one level per step: go right when s is past the left subtree's sum (and the right
        subtree is not empty, so rounding at s ~ total never lands on a zero leaf).
        """
        s = prefix_sums.to(self.tree.dtype)
        node = torch.ones_like(s, dtype=torch.int64)
        for _ in range(self.depth):
            left = 2 * node
            left_sum = self.tree[left]
            right = (s >= left_sum) & (self.tree[left + 1] > 0)
            s = torch.where(right, s - left_sum, s)
            node = torch.where(right, left + 1, left)
        return node - self.n_leaves

    def state_dict(self) -> dict[str, Any]:
        return {"tree": self.tree}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state["tree"].shape) != tuple(self.tree.shape):
            raise ValueError(f"checkpoint sum tree has {state['tree'].shape[0] // 2} leaves; this one "
                             f"{self.n_leaves}")
        self.tree.copy_(state["tree"])


class PrioritizedReplayBuffer(ReplayBuffer):
    """Prioritized replay: transitions drawn with P(i) = p_i^alpha / sum_k p_k^alpha, with importance weights.

    New transitions get the largest priority seen so far (1 at first), so each is replayed at least about once
    before its TD error is known. ``eps`` keeps every priority positive (a zero TD error is not never again).
    """

    def __init__(
        self,
        capacity: int,
        observation: gym.Space | Spec,
        action: gym.Space | Spec,
        n_envs: int = 1,
        device: torch.device | str = "cpu",
        n_step: int = 1,
        gamma: float = 0.99,
        alpha: float = 0.6,
        eps: float = 1e-6,
        field: str = "buffer_size",
    ) -> None:
        if not 0.0 <= alpha:
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        if not eps > 0.0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        super().__init__(capacity, observation, action, n_envs, device, n_step, gamma, field)
        self.alpha, self.eps = float(alpha), float(eps)
        self.tree = SumTree(self.capacity, self.device)
        self.max_priority = torch.ones((), dtype=torch.float64, device=self.device)  # max p_i so far (not ^alpha)
        self._row_indices = torch.arange(self.n_envs, device=self.device)

    def _extra_bytes_per(self) -> int:
        return 2 * 8 * 2  # the tree: ~2 float64 nodes per leaf, with up to 2x padding to a power of two

    @property
    def nbytes(self) -> int:
        return super().nbytes + self.tree.tree.nbytes

    def _added(self, row: int) -> None:
        indices = self._row_indices + row * self.n_envs
        self.tree.update(indices, (self.max_priority**self.alpha).expand(self.n_envs))

    def sample(self, batch_size: int, generator: torch.Generator | None = None,
               beta: float = 0.4) -> dict[str, Tensor]:
        """``batch_size`` transitions drawn by priority, stratified: one draw in each of ``batch_size`` equal
        segments of the priority total. Adds ``weights`` ``[B]`` (float32), w_i = (N P(i))^-beta / max_j w_j over
        the batch, to :meth:`ReplayBuffer.sample`'s dict; ``indices`` go back to :meth:`update_priorities`."""
        size = self._check_sample(batch_size)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta!r}")
        gen_device = generator.device if generator is not None else self.device
        u = torch.rand(batch_size, generator=generator, device=gen_device, dtype=torch.float64).to(self.device)
        total = self.tree.total()
        segments = torch.arange(batch_size, device=self.device, dtype=torch.float64)
        indices = self.tree.find((segments + u) * (total / batch_size))
        probs = self.tree.leaves(indices) / total
        weights = (size * probs) ** -beta
        batch = self.gather(indices)
        batch["weights"] = (weights / weights.max()).to(torch.float32)
        return batch

    def update_priorities(self, indices: Tensor, td_errors: Tensor) -> None:
        """p_i = |delta_i| + eps for the sampled ``indices`` (``td_errors`` ``[B]``, finite; detached here)."""
        priorities = td_errors.detach().abs().to(torch.float64) + self.eps
        self.max_priority = torch.maximum(self.max_priority, priorities.max())
        self.tree.update(indices, priorities**self.alpha)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "tree": self.tree.state_dict(), "max_priority": self.max_priority}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.tree.load_state_dict(state["tree"])
        self.max_priority = state["max_priority"].to(device=self.device, dtype=torch.float64).clone()
