"""th.envs.check / `thorndike check`: Gymnasium's API on one copy, thorndike's VecEnv contract on a batch, and the
old Gym API named as such (also by th.make), each failure saying what to change. Small envs defined here."""

from __future__ import annotations

import threading

import gymnasium as gym
import numpy as np
import pytest
import torch

import thorndike as th
from thorndike.cli import main
from thorndike.envs import EnvCheckError, OldGymAPIError


class Corridor(gym.Env):
    """Walk left or right on 0..4 from 2; the ends terminate (+1 at 4), a noisy start position from np_random."""

    observation_space = gym.spaces.Box(0.0, 4.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, never_ends: bool = False) -> None:
        self.never_ends = never_ends
        self.position = 2

    def obs(self) -> np.ndarray:
        return np.array([self.position, self.np_random.uniform(0, 1)], dtype=np.float32)

    def reset(self, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = 2
        return self.obs(), {}

    def step(self, action):
        self.position = int(np.clip(self.position + (1 if action == 1 else -1), 0, 4))
        ended = self.position in (0, 4) and not self.never_ends
        return self.obs(), float(self.position == 4), ended, False, {}


class OldGym(gym.Env):
    """The old Gym API: reset() -> obs, step() -> (obs, reward, done, info)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self):
        return np.zeros(3, dtype=np.float32)

    def step(self, action):
        return np.zeros(3, dtype=np.float32), 0.0, False, {}


class OldStepOnly(OldGym):
    def reset(self, seed: int | None = None, options: dict | None = None):
        super(OldGym, self).reset(seed=seed)
        return np.zeros(3, dtype=np.float32), {}


class SharedPosition(Corridor):
    """Keeps its position in a dict that is (by mistake) a class attribute: one copy alone is fine (Gymnasium's
    checker passes it), but copies in one process move one shared position."""

    shared: dict[str, int] = {"position": 2}

    @property
    def position(self) -> int:
        return self.shared["position"]

    @position.setter
    def position(self, value: int) -> None:
        self.shared["position"] = value


class WrongShape(Corridor):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return np.append(obs, 0.0).astype(np.float32), reward, terminated, truncated, info


class Unpicklable(Corridor):
    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()


def test_a_good_env_passes_every_check() -> None:
    report = th.envs.check(Corridor, steps=200)
    text = str(report)
    assert "all checks passed" in text and "copy 0 matches a lone copy" in text
    assert "autoreset after" in text and "same seed gives the same first observations and trajectory" in text
    assert not any("cannot be pickled" in note for note in report.notes)


def test_an_env_instance_is_checked_on_copies() -> None:
    assert "all checks passed" in str(th.envs.check(Corridor(), steps=100))


@pytest.mark.parametrize(("env", "problems"), [
    (OldGym, "reset() takes no seed; reset() returns only the observation, not (obs, info); step() returns 4 values"),
    (OldStepOnly, "(step() returns 4 values (obs, reward, done, info), not 5)"),
])
def test_the_old_gym_api_is_named_with_the_way_out(env: type, problems: str) -> None:
    with pytest.raises(OldGymAPIError) as info:
        th.envs.check(env)
    message = str(info.value)
    assert f"{env.__name__} uses the old Gym API" in message and problems in message
    assert "shimmy.GymV21CompatibilityV0" in message and "(obs, reward, terminated, truncated, info)" in message
    # th.make and th.envs.make give the same diagnosis, not "too many / not enough values to unpack"
    with pytest.raises(OldGymAPIError, match="uses the old Gym API"):
        th.make("ppo", env=env, n_envs=2, n_steps=8, minibatch_size=16, progress=False, tensorboard=False).learn(16)
    with pytest.raises(OldGymAPIError, match="uses the old Gym API"):
        th.envs.make(env, n_envs=2, seed=0).step(torch.zeros(2, dtype=torch.int64))


def test_an_object_of_the_old_gym_package_is_named() -> None:
    class LegacyEnv:  # what `class MyEnv(gym.Env)` with the old gym package gives: not a gymnasium.Env
        observation_space = gym.spaces.Discrete(3)
        action_space = gym.spaces.Discrete(2)

        def reset(self):
            return 0

        def step(self, action):
            return 0, 0.0, False, {}

    with pytest.raises(OldGymAPIError, match="an env of the old gym package, not a gymnasium.Env: subclass"):
        th.envs.make(LegacyEnv, n_envs=1, seed=0)


def test_copies_that_share_state_are_caught() -> None:
    with pytest.raises(EnvCheckError, match="copy 0's .* differs from a lone copy's .*not in class attributes"):
        th.envs.check(SharedPosition, steps=50)


def test_a_step_that_breaks_the_batch_is_named_with_gymnasiums_warnings() -> None:
    expected = "step 1 raised .*Gymnasium's checker warned: .*not within the observation space"
    with pytest.raises(EnvCheckError, match=expected):
        th.envs.check(WrongShape)


def test_notes_for_an_env_that_never_ends_or_cannot_be_pickled() -> None:
    report = th.envs.check(lambda: Corridor(never_ends=True), steps=50)
    assert any("no episode ended in 50 random steps" in note for note in report.notes)
    report = th.envs.check(Unpicklable, steps=50)
    assert any("cannot be pickled" in note for note in report.notes)


def test_the_check_command(capsys) -> None:
    assert main(["check", "FrozenLake-v1", "--env-kwargs", "is_slippery=false", "--steps", "100"]) == 0
    out = capsys.readouterr().out
    assert "FrozenLake-v1: all checks passed" in out and "GymnasiumVecEnv, 2 copies" in out
    assert main(["check", f"{__name__}:OldGym"]) == 2
    assert "OldGym uses the old Gym API" in capsys.readouterr().err


class NoSpaces(gym.Env):
    def reset(self, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(2, dtype=np.float32), 0.0, False, False, {}


def test_gymnasiums_checker_refusals_name_the_env() -> None:
    with pytest.raises(EnvCheckError, match="Gymnasium's env checker refuses NoSpaces: .*action space"):
        th.envs.check(NoSpaces)
