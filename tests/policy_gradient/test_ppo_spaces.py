"""PPO on observation spaces other than a flat Box: the encoder is chosen from the space (one-hot for Discrete, a
packed Dict encoded part by part, the Nature CNN for uint8 images), and the rollout stores raw observations."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import thorndike as th
from thorndike.core.encoders import ImageEncoder, OneHotEncoder, PackedEncoder

QUIET = dict(progress=False, tensorboard=False, pictures=False)


class MatchTheMode(gym.Env):
    """Dict observations {"noise": Box(2), "mode": Discrete(3)}; reward 1 when the action is mode == 2, so only the
    Discrete part carries the signal. Episodes last 8 steps."""

    observation_space = gym.spaces.Dict({"noise": gym.spaces.Box(-1, 1, (2,), np.float32),
                                         "mode": gym.spaces.Discrete(3)})
    action_space = gym.spaces.Discrete(2)

    def _observe(self) -> dict:
        self.mode = int(self.np_random.integers(3))
        return {"noise": self.np_random.uniform(-1, 1, 2).astype(np.float32), "mode": self.mode}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._observe(), {}

    def step(self, action):
        reward = float(int(action) == int(self.mode == 2))
        self.t += 1
        return self._observe(), reward, False, self.t >= 8, {}


class BrightOrDark(gym.Env):
    """uint8 frames [1, 40, 40], all bright or all dark; reward 1 for action 1 on a bright frame or 0 on a dark one."""

    observation_space = gym.spaces.Box(0, 255, (1, 40, 40), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def _observe(self) -> np.ndarray:
        self.bright = bool(self.np_random.integers(2))
        return np.full((1, 40, 40), 255 if self.bright else 0, np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._observe(), {}

    def step(self, action):
        reward = float(int(action) == int(self.bright))
        self.t += 1
        return self._observe(), reward, False, self.t >= 4, {}


def test_dict_observations_are_packed_and_learned_from(tmp_path: Path) -> None:
    agent = th.make("ppo", env=MatchTheMode, seed=0, n_envs=8, n_steps=32, minibatch_size=64, n_epochs=4, lr=3e-3,
                    run_root=str(tmp_path), **QUIET)
    assert isinstance(agent.model.encoder, PackedEncoder) and agent.model.encoder.out_features == 2 + 3
    assert agent.buffer["obs"].shape == (32, 8, 3) and agent.buffer["obs"].dtype == torch.float32
    before = agent.evaluate(episodes=8).mean
    agent.learn(8192)
    after = agent.evaluate(episodes=8).mean
    assert after >= 7.5 > before  # 8 steps per episode: it acts on the Discrete part of the Dict
    single = MatchTheMode().reset(seed=1)[0]
    assert agent.act(single) == int(single["mode"] == 2)  # a single Dict observation, as Gymnasium gives it


def test_discrete_observations_are_one_hot_encoded(tmp_path: Path) -> None:
    agent = th.make("ppo", env="FrozenLake-v1", env_kwargs={"is_slippery": False}, seed=0, n_envs=8, n_steps=32,
                    minibatch_size=64, n_epochs=4, lr=3e-3, ent_coef=0.01, run_root=str(tmp_path), **QUIET)
    assert isinstance(agent.model.encoder, OneHotEncoder) and agent.buffer["obs"].dtype == torch.int64
    agent.learn(16384)
    assert agent.evaluate(episodes=4).mean == 1.0  # the deterministic lake is crossed


def test_uint8_images_go_through_the_cnn_and_are_stored_as_bytes(tmp_path: Path) -> None:
    agent = th.make("ppo", env=BrightOrDark, seed=0, n_envs=4, n_steps=8, minibatch_size=32, n_epochs=1,
                    run_root=str(tmp_path), **QUIET)
    assert isinstance(agent.model.encoder, ImageEncoder) and agent.model.shared_trunk
    assert agent.buffer["obs"].dtype == torch.uint8  # a quarter of the memory of float32 frames
    agent.learn(64)
    frames = agent.buffer["obs"][:, 0]
    assert set(frames.unique().tolist()) <= {0, 255}  # raw bytes, not scaled or normalised
    batch = th.envs.make(BrightOrDark, n_envs=4, seed=3).reset(seed=3)
    saved = th.load(agent.save(tmp_path / "image.pt"), env=BrightOrDark)
    assert torch.equal(saved.act(batch), agent.act(batch))
