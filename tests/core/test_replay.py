"""Replay buffers: the ring, final observations, n-step windows, the sum tree, prioritized sampling, checkpoints."""

import io

import gymnasium as gym
import numpy as np
import pytest
import torch
from scipy.stats import chi2

from thorndike.config import ConfigError
from thorndike.core.replay import PrioritizedReplayBuffer, ReplayBuffer, SumTree, action_spec
from thorndike.core.returns import n_step_targets

OBS = ((2,), torch.float32)
ACT = ((), torch.int64)


def fill(buffer, steps, n_envs, seed=0, p_term=0.0, p_trunc=0.0):
    """Add ``steps`` vectorised steps whose observations encode (step, env): obs = [step, env]. Returns the stream."""
    g = torch.Generator().manual_seed(seed)
    stream = {"rewards": torch.randn(steps, n_envs, generator=g),
              "terminated": torch.rand(steps, n_envs, generator=g) < p_term,
              "truncated": torch.rand(steps, n_envs, generator=g) < p_trunc}
    env = torch.arange(n_envs, dtype=torch.float32)
    for t in range(steps):
        obs = torch.stack([torch.full((n_envs,), float(t)), env], 1)
        done = stream["terminated"][t] | stream["truncated"][t]
        # the true next observation: [t + 1, env], or a distinct final observation [-(t + 1), env] at an episode end
        next_obs = torch.stack([torch.where(done, -(t + 1.0), t + 1.0), env], 1)
        buffer.add(obs, torch.full((n_envs,), t), stream["rewards"][t], next_obs, stream["terminated"][t],
                   stream["truncated"][t])
    return stream


def test_ring_wraps_and_keeps_the_newest_rows():
    buffer = ReplayBuffer(7, OBS, ACT, n_envs=2)  # rounded down to 3 rows of 2
    assert buffer.capacity == 6
    fill(buffer, 2, 2)
    assert len(buffer) == 4 and not buffer.full
    buffer = ReplayBuffer(7, OBS, ACT, n_envs=2)
    fill(buffer, 5, 2, seed=1)  # steps 0..4 go to rows 0, 1, 2, 0, 1: rows hold steps 3, 4, 2
    assert len(buffer) == 6 and buffer.full and buffer.pos == 2
    assert buffer.data["obs"][:, :, 0].tolist() == [[3, 3], [4, 4], [2, 2]]
    batch = buffer.sample(500, torch.Generator().manual_seed(0))
    steps = set(batch["obs"][:, 0].tolist())
    assert steps == {2.0, 3.0, 4.0}  # every stored step drawn, none overwritten
    assert torch.equal(batch["actions"].float(), batch["obs"][:, 0])
    assert torch.equal(batch["obs"], buffer.gather(batch["indices"])["obs"])


def test_sampling_stays_in_the_filled_part():
    buffer = ReplayBuffer(100, OBS, ACT, n_envs=4)
    fill(buffer, 3, 4)
    batch = buffer.sample(1000, torch.Generator().manual_seed(0))
    assert int(batch["indices"].max()) < 12 and set(batch["obs"][:, 0].tolist()) == {0.0, 1.0, 2.0}
    # uniform over the 12 transitions: each of the 12 (step, env) pairs appears
    assert len(set(map(tuple, batch["obs"].tolist()))) == 12


def test_final_obs_honoured_and_ends_kept_apart():
    buffer = ReplayBuffer(8, OBS, ACT, n_envs=2)
    obs = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    final = torch.tensor([[9.0, 9.0], [8.0, 8.0]])  # what info["final_obs"] holds, not the reset observation
    buffer.add(obs, torch.tensor([0, 1]), torch.tensor([1.0, 2.0]), final, torch.tensor([True, False]),
               torch.tensor([False, True]))
    batch = buffer.gather(torch.tensor([0, 1]))
    assert torch.equal(batch["next_obs"], final)
    assert batch["terminated"].tolist() == [True, False] and batch["truncated"].tolist() == [False, True]
    assert batch["rewards"].tolist() == [1.0, 2.0]
    assert batch["discounts"].tolist() == pytest.approx([0.99, 0.99])


def test_n_step_by_hand():
    # one env, n = 3, gamma = 0.5; step 1 terminates, step 4 is truncated
    buffer = ReplayBuffer(10, OBS, ACT, n_envs=1, n_step=3, gamma=0.5)
    for t, (r, term, trunc) in enumerate([(1, 0, 0), (2, 1, 0), (3, 0, 0), (4, 0, 0), (5, 0, 1), (6, 0, 0)]):
        next_obs = torch.tensor([[100.0 + t, 0.0]])
        buffer.add(torch.tensor([[float(t), 0.0]]), torch.tensor([t]), torch.tensor([float(r)]), next_obs,
                   torch.tensor([bool(term)]), torch.tensor([bool(trunc)]))
    batch = buffer.gather(torch.arange(6))
    # t0: 1 + .5*2 (terminated at t1); t1: 2; t2: 3 + .5*4 + .25*5 (truncated at t4); t3: 4 + .5*5; t4: 5;
    # t5: 6 (the newest step: the window ends with the data)
    assert batch["rewards"].tolist() == pytest.approx([2.0, 2.0, 6.25, 6.5, 5.0, 6.0])
    assert batch["discounts"].tolist() == pytest.approx([0.25, 0.5, 0.125, 0.25, 0.5, 0.5])
    assert batch["next_obs"][:, 0].tolist() == [101.0, 101.0, 104.0, 104.0, 104.0, 105.0]
    assert batch["terminated"].tolist() == [True, True, False, False, False, False]
    assert batch["truncated"].tolist() == [False, False, True, True, True, False]


@pytest.mark.parametrize("capacity", [400, 90])  # 400: nothing overwritten; 90: wrapped, the last 30 steps kept
def test_n_step_matches_n_step_targets(capacity):
    n_envs, steps, n, gamma = 3, 40, 4, 0.9
    buffer = ReplayBuffer(capacity, OBS, ACT, n_envs=n_envs, n_step=n, gamma=gamma)
    stream = fill(buffer, steps, n_envs, seed=3, p_term=0.1, p_trunc=0.1)
    values = torch.randn(2 * steps + 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    def v(next_obs):  # any function of the observation; the observation encodes (step, env) and final or not
        return values[(next_obs[..., 0].long() + steps + 1)] + next_obs[..., 1].double()

    kept = len(buffer) // n_envs  # steps stored
    batch = buffer.gather(torch.arange(len(buffer)))
    mine = batch["rewards"].double() + batch["discounts"].double() * v(batch["next_obs"]).masked_fill(
        batch["terminated"], 0.0)
    # rows of the buffer in time order: the oldest row is pos when full
    order = (torch.arange(kept) + (buffer.pos if buffer.full else 0)) % kept
    mine = mine.view(kept, n_envs)[order]
    t = torch.arange(steps - kept, steps, dtype=torch.float64)
    done = stream["terminated"] | stream["truncated"]
    next_obs = torch.stack([torch.where(done[-kept:], -(t + 1)[:, None], (t + 1)[:, None]),
                            torch.arange(n_envs, dtype=torch.float64).expand(kept, n_envs)], -1)
    expected = n_step_targets(stream["rewards"][-kept:].double(), v(next_obs), stream["terminated"][-kept:],
                              stream["truncated"][-kept:], gamma, n)
    torch.testing.assert_close(mine, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("capacity", [37, 2000])  # two and three levels
def test_sum_tree_total_stays_consistent(capacity):
    g = torch.Generator().manual_seed(0)
    tree, reference = SumTree(capacity), torch.zeros(capacity, dtype=torch.float64)
    for _ in range(300):
        indices = torch.randint(0, capacity, (40,), generator=g)  # repeats happen: the largest priority wins
        priorities = torch.rand(40, generator=g, dtype=torch.float64) * 10
        tree.update(indices, priorities)
        for i in indices.unique():
            reference[i] = priorities[indices == i].max()
    assert torch.equal(tree.leaves(), reference)
    torch.testing.assert_close(tree.total(), reference.sum(), atol=1e-9, rtol=0)
    for parent, children in zip(tree.levels[:-1], tree.levels[1:], strict=True):
        sums = children.view(-1, SumTree.ARITY).sum(-1)
        assert torch.equal(parent[: len(sums)], sums) and not parent[len(sums) :].any()  # the rest is padding
    # and the descent agrees with a cumulative sum of the leaves
    s = torch.rand(1000, generator=g, dtype=torch.float64) * reference.sum()
    assert torch.equal(tree.find(s), torch.searchsorted(reference.cumsum(0), s, right=True))


def test_sum_tree_find_by_hand():
    tree = SumTree(5)
    tree.update(torch.arange(5), torch.tensor([1.0, 0.0, 2.0, 3.0, 0.0]))
    # cumulative: [0, 1) -> 0, [1, 3) -> 2 (leaf 1 is empty), [3, 6) -> 3; leaf 4 (empty) never
    found = tree.find(torch.tensor([0.0, 0.999, 1.0, 2.5, 3.0, 5.999, 6.0]))
    assert found.tolist() == [0, 0, 2, 2, 3, 3, 3]


@pytest.mark.parametrize("capacity", [20, 1100])
def test_sum_tree_sampling_frequencies_match_priorities(capacity):
    g = torch.Generator().manual_seed(1)
    priorities = torch.rand(20, generator=g, dtype=torch.float64) + torch.tensor([0.0, 3.0] * 10)
    priorities[7] = 0.0
    tree = SumTree(capacity)
    where = torch.arange(20) * (capacity // 20) + (capacity // 40)  # spread over the leaves; the others stay 0
    tree.update(where, priorities)
    draws = 200_000
    found = tree.find(torch.rand(draws, generator=g, dtype=torch.float64) * tree.total())
    all_counts = torch.bincount(found, minlength=capacity).double()
    counts = all_counts[where]
    assert counts[7] == 0 and counts.sum() == draws and found.max() < capacity
    expected = draws * priorities / priorities.sum()
    nonzero = expected > 0
    statistic = float(((counts - expected)[nonzero] ** 2 / expected[nonzero]).sum())
    p_value = chi2.sf(statistic, df=int(nonzero.sum()) - 1)
    assert p_value > 1e-3, (statistic, p_value)  # a correct tree fails this one time in a thousand seeds
    # and a wrong distribution (uniform over the non-empty leaves) is rejected by the same test
    uniform = draws * nonzero.double() / nonzero.sum()
    wrong = float(((counts - uniform)[nonzero] ** 2 / uniform[nonzero]).sum())
    assert chi2.sf(wrong, df=int(nonzero.sum()) - 1) < 1e-3


def per_buffer(alpha=1.0, capacity=4):
    buffer = PrioritizedReplayBuffer(capacity, OBS, ACT, n_envs=1, alpha=alpha, eps=1e-6)
    fill(buffer, capacity, 1)
    return buffer


@pytest.mark.parametrize("beta, weights", [(1.0, [1, 0.5, 1 / 3, 0.25]), (0.5, [1, 0.5**0.5, 3**-0.5, 0.5])])
def test_importance_weights_by_hand(beta, weights):
    buffer = per_buffer()
    td = torch.tensor([1.0, -2.0, 3.0, -4.0], dtype=torch.float64)
    buffer.update_priorities(torch.arange(4), td - td.sign() * 1e-6)  # so that p = |td| + eps is 1, 2, 3, 4
    # p = [1, 2, 3, 4], alpha = 1: P = [.1, .2, .3, .4]; N P = [.4, .8, 1.2, 1.6]; w = (N P)^-beta / max
    # a batch of 10 draws one prefix sum in each unit segment of the total 10: leaf 0 covers [0, 1), leaf 1 [1, 3),
    # leaf 2 [3, 6), leaf 3 [6, 10)
    batch = buffer.sample(10, torch.Generator().manual_seed(0), beta=beta)
    assert batch["indices"].tolist() == [0, 1, 1, 2, 2, 2, 3, 3, 3, 3]
    expected = torch.tensor(weights, dtype=torch.float32)[batch["indices"]]
    torch.testing.assert_close(batch["weights"], expected, atol=1e-5, rtol=0)
    assert torch.equal(batch["obs"][:, 0], batch["indices"].float())


def test_priorities_alpha_and_new_transitions_at_max():
    buffer = per_buffer(alpha=0.5, capacity=8)
    assert buffer.tree.leaves()[:8].tolist() == [1.0] * 8  # before any TD error: priority 1
    buffer.update_priorities(torch.tensor([2, 5]), torch.tensor([8.0, -0.5]))
    leaves = buffer.tree.leaves()
    torch.testing.assert_close(leaves[torch.tensor([2, 5])], torch.tensor([8.0, 0.5], dtype=torch.float64).add(1e-6)
                               .pow(0.5))
    fill(buffer, 1, 1)  # overwrites index 0 at the largest priority so far, 8 + eps
    torch.testing.assert_close(buffer.tree.leaves()[0], torch.tensor(8.000001, dtype=torch.float64).pow(0.5))
    buffer.update_priorities(torch.tensor([1]), torch.tensor([0.0]))
    assert buffer.tree.leaves()[1] > 0  # eps keeps it drawable


def test_prioritized_sampling_follows_priorities():
    buffer = per_buffer(capacity=4)
    buffer.update_priorities(torch.arange(4), torch.tensor([1.0, 1.0, 1.0, 5.0]))
    batch = buffer.sample(800, torch.Generator().manual_seed(0), beta=0.4)
    share = (batch["indices"] == 3).double().mean().item()
    assert share == pytest.approx(0.625, abs=0.01)  # 5 / 8 (stratified: off by at most a segment or two)


@pytest.mark.parametrize("prioritized", [False, True])
def test_save_load_round_trip_samples_the_same(prioritized):
    kwargs = {"n_envs": 3, "n_step": 2, "gamma": 0.9}
    make = (lambda: PrioritizedReplayBuffer(30, OBS, ACT, **kwargs)) if prioritized else (
        lambda: ReplayBuffer(30, OBS, ACT, **kwargs))
    buffer = make()
    fill(buffer, 14, 3, seed=5, p_term=0.2, p_trunc=0.1)
    if prioritized:
        buffer.update_priorities(torch.arange(12), torch.linspace(-3, 3, 12))
    file = io.BytesIO()
    torch.save(buffer.state_dict(), file)
    file.seek(0)
    restored = make()
    restored.load_state_dict(torch.load(file))
    assert len(restored) == len(buffer) and restored.nbytes == buffer.nbytes
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    extra = {"beta": 0.6} if prioritized else {}
    a, b = buffer.sample(64, g1, **extra), restored.sample(64, g2, **extra)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    with pytest.raises(ValueError, match="does not fit|this buffer"):
        ReplayBuffer(60, OBS, ACT, n_envs=3).load_state_dict(buffer.state_dict())


def test_nbytes_counts_the_storage():
    buffer = ReplayBuffer(10, ((4, 84, 84), torch.uint8), ACT, n_envs=2)
    # obs and next_obs 28224 bytes each, action 8, reward 4, two flags 2
    assert buffer.nbytes == 10 * (2 * 4 * 84 * 84 + 8 + 4 + 2)


def test_spaces_are_accepted():
    buffer = ReplayBuffer(4, gym.spaces.Box(-1, 1, (3,), np.float64), gym.spaces.Discrete(2))
    assert (buffer.obs_shape, buffer.obs_dtype, buffer.action_shape, buffer.action_dtype) == (
        (3,), torch.float32, (), torch.int64)
    assert action_spec(gym.spaces.Box(-1, 1, (2,))) == ((2,), torch.float32)
    with pytest.raises(ValueError, match="MultiDiscrete"):
        action_spec(gym.spaces.MultiDiscrete([2, 2]))


def test_oversized_capacity_refused_naming_the_field():
    with pytest.raises(ConfigError, match="buffer_size=1000000000000.*lower buffer_size"):
        ReplayBuffer(10**12, ((4, 84, 84), torch.uint8), ACT)
    with pytest.raises(ConfigError, match="memory_size"):
        PrioritizedReplayBuffer(10**12, OBS, ACT, field="memory_size")


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"buffer_size must be an int >= 4 \(n_envs\)"):
        ReplayBuffer(3, OBS, ACT, n_envs=4)
    with pytest.raises(ValueError, match="n_step"):
        ReplayBuffer(8, OBS, ACT, n_step=0)
    with pytest.raises(ValueError, match="gamma"):
        ReplayBuffer(8, OBS, ACT, gamma=1.5)
    with pytest.raises(ValueError, match="observation must be"):
        ReplayBuffer(8, (4,), ACT)
    with pytest.raises(ValueError, match="alpha"):
        PrioritizedReplayBuffer(8, OBS, ACT, alpha=-1.0)
    buffer = PrioritizedReplayBuffer(8, OBS, ACT)
    with pytest.raises(ValueError, match="empty replay buffer"):
        buffer.sample(4)
    fill(buffer, 2, 1)
    with pytest.raises(ValueError, match="batch_size"):
        buffer.sample(0)
    with pytest.raises(ValueError, match="beta"):
        buffer.sample(4, beta=2.0)
    with pytest.raises(ValueError, match="obs and next_obs must be"):
        buffer.add(torch.zeros(2, 2), torch.zeros(2), torch.zeros(2), torch.zeros(2, 2), torch.zeros(2, dtype=bool),
                   torch.zeros(2, dtype=bool))


# ---------------------------------------------------------------- frame stacks


class FrameStream:
    """``n_envs`` copies of a frame-stacked image env: each step brings a fresh random frame; episodes end at random
    (terminated or truncated). A reset stack is padded as frame-stack wrappers do: zeros (even copies) or repeats of
    the first frame (odd copies). The very first stacks hold a real history, as for a buffer started mid-episode.
    ``add(buffer)`` feeds one step to every buffer given and records it; a transition's action is its id."""

    def __init__(self, n_envs, stack=4, frame=(3, 2), p_end=0.15, seed=0):
        self.g = torch.Generator().manual_seed(seed)
        self.n_envs, self.stack, self.frame, self.p_end = n_envs, stack, frame, p_end
        self.stacks = self._frames(n_envs, stack)
        self.records = []

    def _frames(self, *shape):
        return torch.randint(0, 256, (*shape, *self.frame), generator=self.g, dtype=torch.uint8)

    def add(self, *buffers):
        n = self.n_envs
        obs = self.stacks.clone()
        next_obs = torch.cat([obs[:, 1:], self._frames(n, 1)], 1)  # the true next observation (final_obs)
        terminated = torch.rand(n, generator=self.g) < self.p_end / 2
        truncated = ~terminated & (torch.rand(n, generator=self.g) < self.p_end / 2)
        actions = torch.arange(n) + len(self.records) * n
        rewards = torch.randn(n, generator=self.g)
        for buffer in buffers:  # float64 rewards, as some envs give: stored as float32
            buffer.add(obs, actions, rewards.double(), next_obs, terminated, truncated)
        self.records.append((obs, next_obs))
        first = self._frames(n, 1)
        zeros = (torch.arange(n) % 2 == 0).view(n, 1, *[1] * len(self.frame))
        reset = torch.cat([torch.where(zeros, 0, first.expand(n, self.stack - 1, *self.frame)), first], 1)
        done = (terminated | truncated).view(n, 1, *[1] * len(self.frame))
        self.stacks = torch.where(done, reset, next_obs)

    def expected(self, ids, key):
        return torch.stack([self.records[i // self.n_envs][key][i % self.n_envs] for i in ids.tolist()])


def valid_indices(buffer):
    return torch.nonzero(buffer.tree.leaves() > 0).flatten()


@pytest.mark.parametrize("capacity", [2000, 3 * 40])  # nothing overwritten; wrapped many times
def test_frame_stacks_rebuilt_exactly(capacity):
    stream = FrameStream(n_envs=3)
    buffer = ReplayBuffer(capacity, ((4, 3, 2), torch.uint8), ACT, n_envs=3, frame_stack=4)
    for _ in range(150):
        stream.add(buffer)
    batch = buffer.gather(valid_indices(buffer))
    ids = batch["actions"]
    assert torch.equal(batch["obs"], stream.expected(ids, 0))
    assert torch.equal(batch["next_obs"], stream.expected(ids, 1))
    for env in range(3):  # each copy keeps its newest transitions, and all of them while they fit
        kept = sorted(i // 3 for i in ids.tolist() if i % 3 == env)
        assert kept == list(range(150 - len(kept), 150))
        assert len(kept) == (150 if capacity == 2000 else len(kept)) and len(kept) >= 15
    assert len(buffer) == len(ids)
    # uniform sampling draws valid transitions only, each rebuilt right
    sampled = buffer.sample(300, torch.Generator().manual_seed(0))
    assert torch.equal(sampled["obs"], stream.expected(sampled["actions"], 0))
    assert torch.equal(sampled["next_obs"], stream.expected(sampled["actions"], 1))


def test_frame_sampling_is_uniform_over_valid_transitions():
    stream = FrameStream(n_envs=2, seed=1)
    buffer = ReplayBuffer(2 * 30, ((4, 3, 2), torch.uint8), ACT, n_envs=2, frame_stack=4)
    for _ in range(100):
        stream.add(buffer)
    valid = valid_indices(buffer)
    draws = 40_000
    counts = torch.bincount(buffer.sample(draws, torch.Generator().manual_seed(2))["indices"],
                            minlength=buffer.capacity)
    assert counts.sum() == counts[valid].sum()
    expected = draws / len(valid)
    statistic = float(((counts[valid] - expected) ** 2 / expected).sum())
    assert chi2.sf(statistic, df=len(valid) - 1) > 1e-3


@pytest.mark.parametrize("capacity", [3000, 3 * 40])
def test_frame_n_step_matches_the_column_buffer(capacity):
    stream = FrameStream(n_envs=3, seed=2, p_end=0.25)
    frames = ReplayBuffer(capacity, ((4, 3, 2), torch.uint8), ACT, n_envs=3, frame_stack=4, n_step=3, gamma=0.8)
    columns = ReplayBuffer(3000, ((4, 3, 2), torch.uint8), ACT, n_envs=3, n_step=3, gamma=0.8)
    for _ in range(120):
        stream.add(frames, columns)
    mine = frames.gather(valid_indices(frames))
    theirs = columns.gather(mine["actions"])  # the column buffer never wrapped: a transition's index is its id
    for key in ("obs", "actions", "rewards", "discounts", "next_obs", "terminated", "truncated"):
        assert torch.equal(mine[key], theirs[key]), key


def test_prioritized_frames_round_trip_and_skip_overwritten():
    stream = FrameStream(n_envs=2, seed=3)
    make = lambda: PrioritizedReplayBuffer(2 * 24, ((4, 3, 2), torch.uint8), ACT, n_envs=2, frame_stack=4,  # noqa: E731
                                           n_step=2)
    buffer = make()
    for _ in range(40):
        stream.add(buffer)
    batch = buffer.sample(16, torch.Generator().manual_seed(0), beta=0.5)
    assert torch.equal(batch["obs"], stream.expected(batch["actions"], 0))
    buffer.update_priorities(batch["indices"], torch.randn(16, generator=torch.Generator().manual_seed(1)))
    file = io.BytesIO()
    torch.save(buffer.state_dict(), file)
    file.seek(0)
    restored = make()
    restored.load_state_dict(torch.load(file))
    a = buffer.sample(32, torch.Generator().manual_seed(5), beta=0.5)
    b = restored.sample(32, torch.Generator().manual_seed(5), beta=0.5)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for _ in range(30):  # the sampled transitions are overwritten; a late priority update must not revive them
        stream.add(buffer)
    gone = a["indices"][buffer.tree.leaves(a["indices"]) == 0]
    assert len(gone) > 0
    buffer.update_priorities(gone, torch.ones(len(gone)))
    assert torch.all(buffer.tree.leaves(gone) == 0)


def test_frame_storage_bytes_for_atari():
    buffer = ReplayBuffer(4096, ((4, 84, 84), torch.uint8), ACT, n_envs=8, frame_stack=4)
    per_frame = buffer.nbytes / buffer.capacity
    assert per_frame < 7080  # 7,056 frame bytes + 14 + the tree's ~8.3
    assert 10**6 * per_frame < 8e9  # a million Atari transitions fit in 8 GB (plus 4 frames per episode)
    whole = ReplayBuffer(4096, ((4, 84, 84), torch.uint8), ACT, n_envs=8)
    assert whole.nbytes / whole.capacity > 7.9 * per_frame
    with pytest.raises(ConfigError, match="per frame"):
        ReplayBuffer(10**12, ((4, 84, 84), torch.uint8), ACT, frame_stack=4)
    with pytest.raises(ValueError, match="frame_stack=4 needs uint8"):
        ReplayBuffer(100, ((4, 84, 84), torch.float32), ACT, frame_stack=4)
    with pytest.raises(ValueError, match=r">= 10 \(n_envs x \(2 frame_stack \+ 2\)\)"):
        ReplayBuffer(9, ((4, 84, 84), torch.uint8), ACT, frame_stack=4)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("frame_stack", [0, 4])
def test_cuda_buffer_matches_the_cpu_one(frame_stack):
    stream = FrameStream(n_envs=3, seed=4)
    make = lambda device: PrioritizedReplayBuffer(3 * 30, ((4, 3, 2), torch.uint8), ACT, n_envs=3,  # noqa: E731
                                                  device=device, n_step=3, frame_stack=frame_stack)
    cpu, cuda = make("cpu"), make("cuda")
    for _ in range(50):
        stream.add(cpu, cuda)  # CPU tensors into the CUDA buffer too
    indices = torch.nonzero(cpu.tree.leaves() > 0).flatten()
    a, b = cpu.gather(indices), cuda.gather(indices.cuda())
    for key in a:
        assert torch.equal(a[key], b[key].cpu()), key
    td = torch.randn(len(indices), generator=torch.Generator().manual_seed(0))
    cpu.update_priorities(indices, td)
    cuda.update_priorities(indices.cuda(), td.cuda())
    torch.testing.assert_close(cpu.tree.leaves(), cuda.tree.leaves().cpu())
    batch = cuda.sample(64, torch.Generator(device="cuda").manual_seed(0), beta=0.5)
    assert torch.equal(batch["obs"].cpu(), stream.expected(batch["actions"].cpu(), 0))
    assert batch["weights"].device.type == "cuda" and float(batch["weights"].max()) == 1.0
