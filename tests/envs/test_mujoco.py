"""MuJoCo through Gymnasium (the ``[mujoco]`` extra, part of ``[dev]``): the four locomotion envs build with their
tuned configs, SAC takes a few hundred steps on each with tiny networks (actions inside the bounds, finite losses,
weights moved), and a video renders headless (MUJOCO_GL=egl, thorndike's default without a display)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco", reason="the MuJoCo tests need mujoco (pip install -e '.[mujoco]')")

import imageio.v2 as imageio  # noqa: E402

import thorndike as th  # noqa: E402
from thorndike.envs.video import record_video  # noqa: E402

torch.set_num_threads(1)
QUIET = dict(progress=False, tensorboard=False, pictures=False)
TINY = dict(hidden_sizes=(16, 16), buffer_size=1000, learning_starts=50, batch_size=16, log_every=100)
# (observation size, action size) of the v5 envs with their default kwargs
SHAPES = {"HalfCheetah-v5": (17, 6), "Hopper-v5": (11, 3), "Walker2d-v5": (17, 6), "Ant-v5": (105, 8)}


@pytest.mark.parametrize("env_id", sorted(SHAPES))
def test_sac_takes_a_few_hundred_steps_on_each_mujoco_env(tmp_path: Path, env_id: str) -> None:
    agent = th.make("sac", env=env_id, run_root=str(tmp_path), seed=0, **TINY, **QUIET)
    obs_dim, action_dim = SHAPES[env_id]
    assert agent.obs.shape == (1, obs_dim) and agent.action_space.shape == (action_dim,)
    assert agent.config.lr == 3e-4  # the tuned MuJoCo values are read, the test's TINY ones win over them
    before = [p.detach().clone() for p in agent.actor.parameters()]
    stored: list[torch.Tensor] = []
    real_add = agent.loop.buffer.add

    def recording(obs, actions, *rest):
        stored.append(actions.clone())
        return real_add(obs, actions, *rest)

    agent.loop.buffer.add = recording
    agent.learn(200)
    actions = torch.cat(stored)
    assert actions.shape == (200, action_dim) and actions.abs().max() <= 1.0  # [-1, 1], the algorithm's units
    assert actions[50:].std() > 0.05  # the actor acts, stochastically, after the warm-up
    rows = list(csv.DictReader((agent.run_dir / "progress.csv").open()))
    assert [int(r["gradient_steps"]) for r in rows] == [50, 100]  # one per env step after the 50 warm-up steps
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.actor.parameters()))


def test_the_tuned_configs_are_rl_zoos_mujoco_defaults(tmp_path: Path) -> None:
    sac = th.make("sac", env="HalfCheetah-v5", run_root=str(tmp_path), buffer_size=10_000, **QUIET)
    assert (sac.config.hidden_sizes, sac.config.learning_starts, sac.config.lr) == ((256, 256), 10_000, 3e-4)
    td3 = th.make("td3", env="Walker2d-v5", run_root=str(tmp_path), buffer_size=10_000, **QUIET)
    assert (td3.config.hidden_sizes, td3.config.noise_std, td3.config.policy_delay) == ((400, 300), 0.1, 2)


def test_async_copies_step_like_sync_ones(tmp_path: Path) -> None:
    """Two Hopper copies in subprocesses give the transitions the same copies give in this process."""
    runs = {}
    for vectorization in ("sync", "async"):
        agent = th.make("sac", env="Hopper-v5", run_root=str(tmp_path / vectorization), seed=3, n_envs=2,
                        vectorization=vectorization, **{**TINY, "learning_starts": 100}, **QUIET)
        assert agent.interaction.envs.vectorization == vectorization
        agent.learn(40)
        buffer = agent.loop.buffer
        runs[vectorization] = buffer.sample(16, torch.Generator().manual_seed(0))
        agent.interaction.close()
    for key, value in runs["sync"].items():
        torch.testing.assert_close(runs["async"][key], value, rtol=0, atol=0, msg=key)


def test_a_video_renders_headless(tmp_path: Path) -> None:
    assert os.environ.get("MUJOCO_GL") or os.environ.get("DISPLAY")  # thorndike chose EGL without a display
    agent = th.make("sac", env="Hopper-v5", run_root=str(tmp_path), **TINY, **QUIET)
    path = record_video(agent, tmp_path / "hopper.mp4", max_frames=12)
    with imageio.get_reader(path) as reader:
        frames = list(reader.iter_data())
    assert 2 <= len(frames) <= 12 and frames[0].shape == (480, 480, 3)
    assert frames[0].std() > 10  # a picture of the hopper, not a blank frame
