"""Experience replay: a ring buffer of transitions, a sum tree, prioritized replay, n-step returns.

Notes: experience replay (000 L287-L290, 001 L80-L94, 003 L389-L391): store each transition (s, a, r, s') and learn
from uniformly drawn minibatches, so that updates reuse data and consecutive, correlated steps do not follow each
other. Prioritized replay (003 L470-L504, Schaul et al. 2016):

    p_i = |delta_i| + eps,   P(i) = p_i^alpha / sum_k p_k^alpha,   w_i = (N P(i))^-beta / max_j w_j

with beta annealed to 1 by the caller (the weights correct the bias of non-uniform sampling fully only at beta = 1).
The max-normalisation of the weights is not in the notes; it is taken, as in Schaul et al.'s Algorithm 1, over the
sampled minibatch, so weights only scale updates down (and N cancels out of them). n-step returns (003 L329-L339):
a sampled transition carries

    R = sum_{k<m} gamma^k r_{t+k},   s' = the observation after step t+m-1,   discount = gamma^m

with m = min(n, steps until the episode ends (inclusive), steps until the newest stored step (inclusive)): the
target is ``R + discount * (1 - terminated) * V(s')`` (no bootstrap after a termination; after a truncation the
bootstrap is from the true last observation, which the caller stored as ``next_obs``). These are the targets of
:func:`thorndike.core.returns.n_step_targets` over the stream of each env copy.

Layout. ``n_envs`` copies step in lockstep and each column of ``[rows, n_envs, ...]`` tensors is one copy's stream,
so the successor of a transition is the next row of its column: an n-step window is one ``[B, n]`` gather. A
transition's *index* is ``row * n_envs + env``. Two storages:

- columns (the default): ``obs`` and ``next_obs`` stored whole, one row per vectorised step, the oldest row
  overwritten when full (capacity = rows x n_envs transitions);
- frames (``frame_stack=S``, for uint8 frame stacks ``[S, *frame]`` such as Atari's ``[4, 84, 84]``): each column is
  a stream of single frames, the stack rebuilt at sampling time from the S frames before a transition's row. Each
  step stores the newest frame of its observation; an episode's first observation stores all its S frames (so the
  padding the frame-stack wrapper put there, zeros or repeats of the first frame, or the real history of a buffer
  started mid-episode, is kept as it was) and its end one more frame, the final observation's. Capacity counts
  frames: episodes of L steps fill ``L + S`` frames. For ``[4, 84, 84]`` frames and Discrete actions a transition
  takes 7,056 frame bytes + 8 (action) + 4 (reward) + 2 (flags) + ~8.3 (sum tree) = 7,078 bytes, so 1M
  transitions take 7.1 GB (plus 4 frames, 28 KB, per episode), against 56,462 bytes per transition (56 GB per
  million) for whole uint8 ``obs`` and ``next_obs``.

Cost. ``add`` is one copy per field; ``sample`` is one ``randint`` and one gather per field (with n-step returns,
about ten more ops for the whole ``[B, n]`` window). Neither waits for the device: the counters that decide what is
filled are Python ints or device tensors. A prioritized buffer, and the frame storage (whose valid transitions are
the non-zero leaves of the tree), also update a sum tree on ``add`` and descend it on ``sample``: a few ops per
level of a 32-ary tree (4 levels for a million leaves), again without a host synchronisation. Only ``len()`` of a
frame buffer reads the device (it counts the tree's non-zero leaves): call it per log row, not per step.
"""

from __future__ import annotations

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
            and isinstance(value[0], tuple) and all(isinstance(d, int) and d >= 1 for d in value[0])):
        return tuple(value[0]), value[1]
    raise ValueError(f"{what} must be a gymnasium space or a (shape, torch dtype) pair, got {value!r}")


class SumTree:
    """A tree of sums over ``capacity`` non-negative leaves, every node holding the sum of its children; all ops
    batched over a batch of indices or prefix sums.

    Each node has ``ARITY`` (32) children, so a million leaves are 4 levels deep and an update or a descent is a
    few tensor ops per level (a binary tree would need 20 levels, each a handful of small kernels). ``levels[0]``
    is the root ``[1]``, node i of level d has the children ``ARITY * i .. ARITY * i + ARITY - 1`` of level d + 1,
    and the last level holds the leaves (each level padded to a multiple of ``ARITY``; padding stays 0). Sums are
    float64, and a parent is always recomputed from its children, never incremented, so rounding errors cannot
    accumulate over updates.
    """

    ARITY = 32

    def __init__(self, capacity: int, device: torch.device | str = "cpu") -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
        self.capacity = capacity
        self.levels = [torch.zeros(size, dtype=torch.float64, device=device) for size in self._sizes(capacity)]
        self.depth = len(self.levels) - 1

    @classmethod
    def _sizes(cls, capacity: int) -> list[int]:
        """Nodes per level, root first: each level below the root padded to a multiple of ``ARITY`` (so that its
        nodes group into their parents' children), the level above holding one node per group."""
        sizes, n = [], capacity
        while True:
            sizes.append(-(-n // cls.ARITY) * cls.ARITY)
            n = sizes[-1] // cls.ARITY
            if n == 1:
                return [1, *reversed(sizes)]

    @classmethod
    def bytes_for(cls, capacity: int) -> int:
        """Bytes of a tree of ``capacity`` leaves."""
        return sum(cls._sizes(capacity)) * 8

    @property
    def nbytes(self) -> int:
        return sum(level.nbytes for level in self.levels)

    def total(self) -> Tensor:
        """The sum of all leaves (a 0-dim tensor: no host synchronisation)."""
        return self.levels[0][0]

    def leaves(self, indices: Tensor | None = None) -> Tensor:
        """The leaves at ``indices`` (all ``capacity`` leaves when None)."""
        if indices is None:
            return self.levels[-1][: self.capacity]
        return self.levels[-1][indices]

    def update(self, indices: Tensor, priorities: Tensor) -> None:
        """Set the leaves at ``indices`` (``[B]`` int64) to ``priorities`` (``[B]``, >= 0, finite), then their
        ancestors. A repeated index gets the largest of its priorities (deterministic on every device)."""
        self.levels[-1].scatter_reduce_(0, indices, priorities.to(torch.float64), reduce="amax", include_self=False)
        node = indices
        for d in range(self.depth, 0, -1):
            node = node // self.ARITY
            # a repeated parent is written the same sum each time
            self.levels[d - 1][node] = self.levels[d].view(-1, self.ARITY)[node].sum(-1)

    def find(self, prefix_sums: Tensor) -> Tensor:
        """For each prefix sum s in [0, total), the leaf i with sum(leaves[:i]) <= s < sum(leaves[:i + 1]).

        The batch descends one level per step: the child is the number of children whose running sum is <= s,
        capped at the last non-empty child, so rounding at s ~ total never lands on an empty subtree.
        """
        s = prefix_sums.to(torch.float64)
        node = torch.zeros_like(s, dtype=torch.int64)
        for d in range(1, self.depth + 1):
            sums = self.levels[d].view(-1, self.ARITY)[node]  # [B, ARITY]
            ends = sums.cumsum(-1)
            # the last non-empty child is the first whose running sum reaches the node's total
            last = (ends < ends[:, -1:]).sum(-1)
            child = torch.minimum((ends <= s[:, None]).sum(-1), last)
            s = s - (ends - sums).gather(1, child[:, None]).squeeze(1)
            node = node * self.ARITY + child
        return node

    def state_dict(self) -> dict[str, Any]:
        return {"levels": list(self.levels)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if [tuple(t.shape) for t in state["levels"]] != [tuple(t.shape) for t in self.levels]:
            raise ValueError(f"checkpoint sum tree has {state['levels'][-1].shape[0]} leaves; this one "
                             f"{self.levels[-1].shape[0]}")
        for level, saved in zip(self.levels, state["levels"], strict=True):
            level.copy_(saved)


class ReplayBuffer:
    """Transitions of ``n_envs`` lockstep env copies in a preallocated ring on ``device``; uniform sampling.

    ``observation`` and ``action`` are gymnasium spaces or ``(shape, dtype)`` pairs (:func:`storage_spec`,
    :func:`action_spec`). Observations are stored raw (normalisation is the model's, see ``docs/architecture.md``).
    ``capacity`` (transitions, or frames with ``frame_stack``) is rounded down to a multiple of ``n_envs``; when
    full, the oldest entries are overwritten. ``frame_stack=S`` stores uint8 ``[S, *frame]`` frame stacks as single
    frames (module docstring). ``field`` is the config field that sets ``capacity``: a capacity the machine cannot
    hold is refused naming it.

    Checkpointing is the caller's choice: :attr:`nbytes` says what :meth:`state_dict` would write. A run resumed
    without it starts with an empty buffer (refilled for ``learning_starts`` steps if the caller's loop says so), so
    it goes on correctly but not bit for bit like an uninterrupted run.
    """

    prioritized = False

    def __init__(
        self,
        capacity: int,
        observation: gym.Space | Spec,
        action: gym.Space | Spec,
        n_envs: int = 1,
        device: torch.device | str = "cpu",
        n_step: int = 1,
        gamma: float = 0.99,
        frame_stack: int = 0,
        field: str = "buffer_size",
    ) -> None:
        if not isinstance(n_envs, int) or n_envs < 1:
            raise ValueError(f"n_envs must be an int >= 1, got {n_envs!r}")
        if not isinstance(n_step, int) or n_step < 1:
            raise ValueError(f"n_step must be an int >= 1, got {n_step!r}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
        self.obs_shape, self.obs_dtype = _spec(observation, "observation")
        self.action_shape, self.action_dtype = _spec(action, "action")
        if not isinstance(frame_stack, int) or frame_stack < 0:
            raise ValueError(f"frame_stack must be an int >= 0, got {frame_stack!r}")
        if frame_stack and (self.obs_dtype != torch.uint8 or len(self.obs_shape) < 2
                            or self.obs_shape[0] != frame_stack):
            raise ValueError(f"frame_stack={frame_stack} needs uint8 observations [frame_stack, *frame], got "
                             f"{list(self.obs_shape)} {self.obs_dtype}")
        # a frame column must hold a transition's S frames, its next frame and the S rows its writes may damage
        least = n_envs * (2 * frame_stack + 2) if frame_stack else n_envs
        if not isinstance(capacity, int) or capacity < least:
            raise ValueError(f"{field} must be an int >= {least} (n_envs"
                             f"{' x (2 frame_stack + 2)' if frame_stack else ''}), got {capacity!r}")
        self.n_envs, self.rows = n_envs, capacity // n_envs
        self.capacity = self.rows * n_envs
        self.n_step, self.gamma, self.frame_stack = n_step, float(gamma), frame_stack
        self.device = torch.device(device)

        fields = {"actions": (self.action_shape, self.action_dtype), "rewards": ((), torch.float32),
                  "terminated": ((), torch.bool), "truncated": ((), torch.bool)}
        if frame_stack:
            fields["frames"] = (self.obs_shape[1:], self.obs_dtype)
        else:
            fields["obs"] = fields["next_obs"] = (self.obs_shape, self.obs_dtype)
        per = sum(tensor_bytes(*shape, dtype=dtype) for shape, dtype in fields.values())
        tree_bytes = SumTree.bytes_for(self.capacity) if self.prioritized or frame_stack else 0
        require_memory("the replay buffer", self.capacity * per + tree_bytes, self.device, {field: capacity},
                       f"{per:,} bytes per {'frame' if frame_stack else 'transition'}"
                       f"{', and a sum tree' if tree_bytes else ''}")
        self.data = {name: torch.zeros((self.rows, n_envs, *shape), dtype=dtype, device=self.device)
                     for name, (shape, dtype) in fields.items()}
        # The frame storage and prioritized sampling draw from a sum tree over the transition indices.
        self.tree = SumTree(self.capacity, self.device) if self.prioritized or frame_stack else None
        # gamma^m for the m <= n steps of a window, so a sampled discount is one gather.
        self._gamma_pow = (self.gamma ** torch.arange(n_step + 1, dtype=torch.float64)).to(torch.float32)
        self._gamma_pow = self._gamma_pow.to(self.device)
        self._envs = torch.arange(n_envs, device=self.device)
        self._window = torch.arange(n_step, device=self.device)
        self._span = torch.arange(2 * frame_stack, device=self.device)  # frames: S rows of a stack, 2S of leaves
        self.adds = 0  # vectorised steps added
        self.pos = 0  # columns: the row the next add writes
        self.full = False
        # frames: per column, frames written so far (the next row, mod rows), the newest transition's row, and
        # whether the next observation starts an episode (so its S frames are all stored)
        self.head = torch.zeros(n_envs, dtype=torch.int64, device=self.device)
        self.newest = torch.zeros(n_envs, dtype=torch.int64, device=self.device)
        self.starting = torch.ones(n_envs, dtype=torch.bool, device=self.device)

    def __len__(self) -> int:
        """Transitions stored (a frame buffer counts its valid transitions on the device: a host synchronisation)."""
        if self.frame_stack:
            return int((self.tree.leaves() > 0).sum())
        return self.capacity if self.full else self.pos * self.n_envs

    @property
    def nbytes(self) -> int:
        """Bytes the buffer holds (what :meth:`state_dict` writes to a checkpoint)."""
        return sum(t.nbytes for t in self.data.values()) + (self.tree.nbytes if self.tree is not None else 0)

    def _new_leaf(self) -> Tensor:
        """The sum-tree leaf of a new transition: 1 (uniform); the prioritized buffer gives max priority^alpha."""
        return torch.ones((), dtype=torch.float64, device=self.device)

    def add(self, obs: Tensor, actions: Tensor, rewards: Tensor, next_obs: Tensor, terminated: Tensor,
            truncated: Tensor) -> None:
        """Store one vectorised step, each argument ``[n_envs, ...]``.

        ``next_obs`` must be the TRUE next observation: the env's ``info["final_obs"]`` (``obs`` where no episode
        ended), not the observation autoreset put in its place. With ``frame_stack``, consecutive calls must be
        consecutive steps of the same envs (each ``obs`` is the previous ``next_obs`` unless an episode ended).
        """
        if tuple(obs.shape) != (self.n_envs, *self.obs_shape) or tuple(next_obs.shape) != tuple(obs.shape):
            raise ValueError(f"obs and next_obs must be {[self.n_envs, *self.obs_shape]}, got {list(obs.shape)} "
                             f"and {list(next_obs.shape)}")
        if self.frame_stack:
            # advanced-index writes need their values on the buffer's device and in its dtypes (a row write casts)
            obs, next_obs = obs.to(self.device, self.obs_dtype), next_obs.to(self.device, self.obs_dtype)
            actions, rewards, terminated, truncated = (
                x.to(self.device, self.data[name].dtype) for x, name in (
                    (actions, "actions"), (rewards, "rewards"), (terminated, "terminated"), (truncated, "truncated")))
            row = self._add_frames(obs, next_obs, terminated | truncated)
        else:
            row = self.pos
            self.data["obs"][row] = obs
            self.data["next_obs"][row] = next_obs
            self.pos = (row + 1) % self.rows
            self.full = self.full or self.pos == 0
            if self.tree is not None:
                self.tree.update(row * self.n_envs + self._envs, self._new_leaf().expand(self.n_envs))
        where = (row, self._envs) if self.frame_stack else row  # frames: each column at its own row
        for name, value in (("actions", actions), ("rewards", rewards), ("terminated", terminated),
                            ("truncated", truncated)):
            self.data[name][where] = value
        self.adds += 1

    def _add_frames(self, obs: Tensor, next_obs: Tensor, done: Tensor) -> Tensor:
        """Write the step's frames; return each column's transition row ``[N]``.

        At h = head, a column writes its observation's S frames to rows h + o - (S-1) .. h + o (o = S - 1 when the
        observation starts an episode, so all S are new; else o = 0 and the S - 1 older ones are rewritten with
        the same bytes), the next observation's newest frame to row h + o + 1, and keeps that frame (head past
        it) only after an episode end, when the next observation will not repeat it.
        """
        S, rows, envs = self.frame_stack, self.rows, self._envs
        h = self.head
        o = self.starting.long() * (S - 1)
        # index_copy_ into the merged (row, env) dim: whole frames copied (the indices never repeat)
        frames = self.data["frames"].view(self.capacity, *self.obs_shape[1:])
        stack_rows = ((h + o - (S - 1))[:, None] + self._span[:S]) % rows
        frames.index_copy_(0, (stack_rows * self.n_envs + envs[:, None]).flatten(), obs.flatten(0, 1))
        row = (h + o) % rows
        frames.index_copy_(0, (row + 1) % rows * self.n_envs + envs, next_obs[:, -1])
        # Leaves of rows h .. h + 2S - 1: the new transition's row gets its leaf; rows newly written (padding,
        # the next frame) and the old transitions whose S frames or next frame they overwrote get 0; rows beyond
        # keep theirs.
        span = self._span
        leaf_rows = (h[:, None] + span) % rows
        indices = (leaf_rows * self.n_envs + envs[:, None]).flatten()
        fresh = span == o[:, None]
        keep = span > o[:, None] + S
        leaves = torch.where(fresh, self._new_leaf(), torch.where(keep, self.tree.leaves(indices).view(-1, 2 * S),
                                                                  0.0))
        self.tree.update(indices, leaves.flatten())
        self.newest = row
        self.head = h + o + 1 + done.long()
        self.starting = done.clone()
        return row

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``batch_size`` transitions drawn uniformly with replacement from the filled part.

        Returns ``obs``, ``actions``, ``rewards`` (the n-step discounted sum), ``next_obs`` (the observation to
        bootstrap from), ``terminated`` / ``truncated`` (how the window ended, if it ended an episode), ``discounts``
        (gamma^m, to multiply the bootstrap with) and ``indices`` (``[B]`` int64).
        """
        self._check_sample(batch_size)
        gen_device = generator.device if generator is not None else self.device
        if self.tree is None:
            size = len(self)
            indices = torch.randint(0, size, (batch_size,), generator=generator, device=gen_device)
            return self.gather(indices.to(self.device))
        # frames: the valid transitions are the tree's leaves of 1
        u = torch.rand(batch_size, generator=generator, device=gen_device, dtype=torch.float64).to(self.device)
        return self.gather(self.tree.find(u * self.tree.total()))

    def _check_sample(self, batch_size: int) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if self.adds == 0:
            raise ValueError("cannot sample from an empty replay buffer: add transitions first (learning_starts)")

    def gather(self, indices: Tensor) -> dict[str, Tensor]:
        """The transitions (n-step windows) that start at ``indices`` (``[B]`` int64, stored transitions)."""
        n_envs, rows = self.n_envs, self.rows
        row, env = indices // n_envs, indices % n_envs
        batch = {"obs": self._obs(row, env, 0), "actions": self._take("actions", indices), "indices": indices}
        if self.n_step == 1:
            last = row
            batch["rewards"] = self._take("rewards", indices)
            batch["discounts"] = self._gamma_pow[1].expand(indices.shape[0])
        else:
            # The window's n rows at once; it closes at an episode end, at the newest stored step, or after n steps.
            newest = self.newest[env, None] if self.frame_stack else (self.pos - 1) % rows
            window = (row[:, None] + self._window) % rows  # [B, n]
            flat = window * n_envs + env[:, None]
            ends = self._take("terminated", flat) | self._take("truncated", flat) | (window == newest)
            ends = ends.to(torch.int32)
            inside = ends.cumsum(1) == ends  # no end before step k: step k is in the window
            m = inside.sum(1)
            batch["rewards"] = (self._take("rewards", flat) * self._gamma_pow[: self.n_step] * inside).sum(1)
            batch["discounts"] = self._gamma_pow[m]
            last = (row + m - 1) % rows
        batch["next_obs"] = self._obs(last, env, 1)
        last_flat = last * n_envs + env
        batch["terminated"] = self._take("terminated", last_flat)
        batch["truncated"] = self._take("truncated", last_flat)
        return batch

    def _take(self, name: str, flat: Tensor) -> Tensor:
        """``data[name]`` at flat indices ``row * n_envs + env`` of any shape, by ``index_select`` over the merged
        (row, env) dim: a copy of whole rows, 10x faster than advanced indexing on two dims on the CPU."""
        tensor = self.data[name]
        merged = tensor.view(self.capacity, *tensor.shape[2:])
        return merged.index_select(0, flat.flatten()).view(*flat.shape, *tensor.shape[2:])

    def _obs(self, row: Tensor, env: Tensor, after: int) -> Tensor:
        """The observation (``after`` = 0) or next observation (1) of the transitions at ``row``, ``env``."""
        if not self.frame_stack:
            return self._take("next_obs" if after else "obs", row * self.n_envs + env)
        start = row + (after - (self.frame_stack - 1))  # the oldest frame of the stack
        rows = (start[:, None] + self._span[: self.frame_stack]) % self.rows
        return self._take("frames", rows * self.n_envs + env[:, None])

    def state_dict(self) -> dict[str, Any]:
        """The stored tensors (references, not copies: write them before the next ``add``) and the counters."""
        state = {"data": dict(self.data), "pos": self.pos, "full": self.full, "adds": self.adds,
                 "head": self.head, "newest": self.newest, "starting": self.starting}
        if self.tree is not None:
            state["tree"] = self.tree.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["data"].keys() != self.data.keys():
            raise ValueError(f"checkpoint replay fields {sorted(state['data'])} do not fit this buffer's "
                             f"{sorted(self.data)} (frame_stack={self.frame_stack})")
        for name, tensor in self.data.items():
            saved = state["data"][name]
            if tuple(saved.shape) != tuple(tensor.shape) or saved.dtype != tensor.dtype:
                raise ValueError(f"checkpoint replay field {name!r} is {tuple(saved.shape)} {saved.dtype}; this "
                                 f"buffer's is {tuple(tensor.shape)} {tensor.dtype} (rows, n_envs, ...)")
        for name, tensor in self.data.items():
            tensor.copy_(state["data"][name])
        if self.tree is not None:
            self.tree.load_state_dict(state["tree"])
        self.pos, self.full, self.adds = int(state["pos"]), bool(state["full"]), int(state["adds"])
        for name in ("head", "newest", "starting"):
            getattr(self, name).copy_(state[name])


class PrioritizedReplayBuffer(ReplayBuffer):
    """Prioritized replay: transitions drawn with P(i) = p_i^alpha / sum_k p_k^alpha, with importance weights.

    New transitions get the largest priority seen so far (1 at first), so each is replayed at least about once
    before its TD error is known. ``eps`` keeps every priority positive (a zero TD error is not never again).
    """

    prioritized = True

    def __init__(
        self,
        capacity: int,
        observation: gym.Space | Spec,
        action: gym.Space | Spec,
        n_envs: int = 1,
        device: torch.device | str = "cpu",
        n_step: int = 1,
        gamma: float = 0.99,
        frame_stack: int = 0,
        alpha: float = 0.6,
        eps: float = 1e-6,
        field: str = "buffer_size",
    ) -> None:
        if not 0.0 <= alpha:
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        if not eps > 0.0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.alpha, self.eps = float(alpha), float(eps)
        self.max_priority = torch.ones((), dtype=torch.float64, device=device)  # max p_i so far (not ^alpha)
        super().__init__(capacity, observation, action, n_envs, device, n_step, gamma, frame_stack, field)

    def _new_leaf(self) -> Tensor:
        return self.max_priority**self.alpha

    def sample(self, batch_size: int, generator: torch.Generator | None = None,
               beta: float = 0.4) -> dict[str, Tensor]:
        """``batch_size`` transitions drawn by priority, stratified: one draw in each of ``batch_size`` equal
        segments of the priority total. Adds ``weights`` ``[B]`` (float32), w_i = (N P(i))^-beta / max_j w_j over
        the batch, to :meth:`ReplayBuffer.sample`'s dict; ``indices`` go back to :meth:`update_priorities`."""
        self._check_sample(batch_size)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta!r}")
        gen_device = generator.device if generator is not None else self.device
        u = torch.rand(batch_size, generator=generator, device=gen_device, dtype=torch.float64).to(self.device)
        total = self.tree.total()
        segments = torch.arange(batch_size, device=self.device, dtype=torch.float64)
        indices = self.tree.find((segments + u) * (total / batch_size))
        # N cancels in the max-normalisation: (N P_i)^-beta / max_j (N P_j)^-beta = (P_i / min_j P_j)^-beta
        weights = (self.tree.leaves(indices) / total) ** -beta
        batch = self.gather(indices)
        batch["weights"] = (weights / weights.max()).to(torch.float32)
        return batch

    def update_priorities(self, indices: Tensor, td_errors: Tensor) -> None:
        """p_i = |delta_i| + eps for the sampled ``indices`` (``td_errors`` ``[B]``, finite; detached here).

        Call it before the next ``add``: a transition overwritten in between would take the old one's priority
        instead of the largest one (a frame transition overwritten in between stays out, its leaf 0).
        """
        priorities = td_errors.detach().abs().to(torch.float64) + self.eps
        self.max_priority = torch.maximum(self.max_priority, priorities.max())
        # A frame transition overwritten since it was sampled (its leaf is 0) stays out of the draw.
        alive = self.tree.leaves(indices) > 0
        self.tree.update(indices, torch.where(alive, priorities**self.alpha, 0.0))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "max_priority": self.max_priority}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.max_priority = state["max_priority"].to(device=self.device, dtype=torch.float64).clone()
