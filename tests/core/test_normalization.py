import gymnasium as gym
import numpy as np
import pytest
import torch

from thorndike.core.normalization import ObservationNormalizer
from thorndike.core.running_stats import RunningMeanStd


def batches() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(n, 3, generator=generator) * torch.tensor([1.0, 5.0, 0.1]) + 2.0 for n in (7, 1, 20)]


def test_statistics_are_mean_and_variance_of_everything_seen():
    normalizer = ObservationNormalizer((3,))
    for batch in batches():
        normalizer.update(batch)
    seen = torch.cat(batches()).double()
    assert normalizer.mean.dtype == torch.float64
    # The prior count of 1e-4 (mean 0, var 1) is all that separates them from the direct computation.
    torch.testing.assert_close(normalizer.mean, seen.mean(0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(normalizer.var, seen.var(0, unbiased=False), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(normalizer.count, torch.tensor(28 + 1e-4, dtype=torch.float64))


def test_statistics_match_running_mean_std_exactly():
    normalizer, reference = ObservationNormalizer((3,)), RunningMeanStd((3,))
    for batch in batches():
        normalizer.update(batch)
        reference.update(batch)
    assert torch.equal(normalizer.mean, reference.mean) and torch.equal(normalizer.var, reference.var)


def test_forward_normalises_and_clips_in_float32():
    normalizer = ObservationNormalizer((2,), clip=3.0, epsilon=0.0, prior_count=1e-12)
    # Two observations per dim: mean 1 and 10, variance 1 and 4 (the prior count made negligible).
    normalizer.update(torch.tensor([[0.0, 8.0], [2.0, 12.0]]))
    out = normalizer(torch.tensor([[2.0, 14.0], [1.0, -100.0]]))
    assert out.dtype == torch.float32
    # (2 - 1) / 1 = 1 and (14 - 10) / 2 = 2; then 0 and (-100 - 10) / 2 = -55, clipped to -3.
    torch.testing.assert_close(out, torch.tensor([[1.0, 2.0], [0.0, -3.0]]))


def test_shift_and_scale_change_only_on_update():
    normalizer = ObservationNormalizer((1,))
    normalizer.update(torch.tensor([[4.0], [6.0]]))
    shift = normalizer.shift.clone()
    normalizer(torch.tensor([[100.0]]))
    assert torch.equal(normalizer.shift, shift)
    assert set(normalizer.state_dict()) == {"mean", "var", "count"}  # the cached float32 pair is derived, not saved


def test_state_dict_round_trip_restores_identical_outputs():
    trained = ObservationNormalizer((3,))
    for batch in batches():
        trained.update(batch)
    restored = ObservationNormalizer((3,))
    restored.load_state_dict(trained.state_dict())
    obs = torch.randn(4, 3) * 3
    assert torch.equal(restored(obs), trained(obs))
    # Inside a model too: the parent's load_state_dict refreshes the child's cached shift and scale.
    model, other = torch.nn.Sequential(ObservationNormalizer((3,))), torch.nn.Sequential(ObservationNormalizer((3,)))
    model[0].load_state_dict(trained.state_dict())
    other.load_state_dict(model.state_dict())
    assert torch.equal(other(obs), trained(obs))


def test_disabled_is_identity_without_state():
    normalizer = ObservationNormalizer(enabled=False)
    obs = torch.randn(2, 3)
    normalizer.update(obs * 100)
    assert normalizer(obs) is obs
    assert normalizer.state_dict() == {}


def test_for_space_only_enables_float_boxes():
    assert ObservationNormalizer.for_space(gym.spaces.Box(-1.0, 1.0, (4,))).mean.shape == (4,)
    assert not ObservationNormalizer.for_space(gym.spaces.Discrete(3), enabled=False).enabled
    for space in (gym.spaces.Discrete(3), gym.spaces.Box(0, 255, (84, 84), dtype=np.uint8)):
        with pytest.raises(ValueError, match="needs a float Box"):
            ObservationNormalizer.for_space(space)
