"""Videos: MP4 and GIF files that read back with the frames played, and native envs drawn by their Gymnasium twin
from the native env's own states."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from torch import Tensor

import thorndike as th
from thorndike.envs.batched import BatchedEnv, CartPole, TabularEnv
from thorndike.envs.video import play_frames, record_gif, record_video


def make_agent(algo: str, env: str, tmp_path: Path) -> Any:
    return th.make(algo, env=env, seed=0, run_root=str(tmp_path), progress=False, tensorboard=False, pictures=False)


def native_rollout(agent: Any, env_id: str, seed: int, max_states: int) -> tuple[BatchedEnv, list[Tensor], Any]:
    """The agent's episode on one native copy stepped the ordinary way (``step``, ``get_state``): the states it
    visits before the end (``max_states`` at most) and the final observation if it ended within them."""
    env = th.envs.make(env_id, 1, seed=seed, backend="torch")
    obs = env.reset(seed=seed)
    states = [env.get_state()[0][0]]
    while len(states) < max_states:
        obs, _, _, _, info = env.step(agent.act(obs))
        if bool(info["done"][0]):
            return env, states, info["final_obs"]
        states.append(env.get_state()[0][0])
    return env, states, None


def twin_state(twin: Any, native: BatchedEnv) -> torch.Tensor:
    """What the Gymnasium twin holds, in the native env's layout and dtype."""
    base = twin.unwrapped
    if isinstance(native, TabularEnv):
        return torch.tensor(base.s, dtype=torch.int64)
    return torch.as_tensor(np.asarray(base.state)).to(native.dtype)



@pytest.mark.parametrize(
    ("algo", "env_id"),
    [
        ("ppo", "CartPole-v1"),
        ("ppo", "Pendulum-v1"),
        ("ppo", "Acrobot-v1"),
        ("ppo", "MountainCarContinuous-v0"),
        ("q_learning", "FrozenLake-v1"),
        ("q_learning", "CliffWalking-v1"),
    ],
)
def test_a_native_env_is_drawn_from_its_own_states(algo: str, env_id: str, tmp_path: Path) -> None:
    agent = make_agent(algo, env_id, tmp_path)
    assert isinstance(agent.interaction.envs, BatchedEnv)  # the agent trains on the native env
    cap = 25
    native, states, final_obs = native_rollout(agent, env_id, seed=3, max_states=cap)
    shown = []
    for frame, twin in play_frames(agent, seed=3, frame_skip=1, max_frames=cap + 1):
        assert frame.ndim == 3 and frame.shape[2] == 3
        shown.append(twin_state(twin, native))
    if final_obs is None:  # still running after the cap: the video is cut at max_frames
        assert len(shown) == cap + 1
    else:  # the video ends on the final state, which autoreset hides from get_state: compare its observation
        assert len(shown) == len(states) + 1
        torch.testing.assert_close(native.observe(shown[-1].unsqueeze(0)), final_obs, rtol=0, atol=0)
    for t, state in enumerate(states):
        assert torch.equal(shown[t], state), f"frame {t}: twin holds {shown[t]}, the native env was in {state}"


def test_mp4_of_ppo_on_native_cartpole(tmp_path: Path) -> None:
    agent = make_agent("ppo", "CartPole-v1", tmp_path)
    assert isinstance(agent.interaction.envs, CartPole)
    _, states, final_obs = native_rollout(agent, "CartPole-v1", seed=0, max_states=500)
    assert final_obs is not None  # an untrained policy drops the pole within 500 steps
    path = record_video(agent, tmp_path / "v" / "cartpole.mp4", seed=0)
    with imageio.get_reader(path) as reader:
        frames = list(reader.iter_data())
        fps = reader.get_meta_data()["fps"]
    assert len(frames) == len(states) + 1  # every state of the episode, the last one included
    # CartPole draws 600x400; H.264 frames are padded to whole 16x16 blocks, not resized
    assert {frame.shape for frame in frames} == {(400, 608, 3)}
    assert fps == 50  # CartPole's render_fps, no frame skipped
    # the first frame is the reset state: the cart at the centre, not a blank image
    assert frames[0].std() > 10

    skipped = record_video(agent, tmp_path / "v" / "small.mp4", seed=0, frame_skip=3, scale=2)
    last = len(states)
    with imageio.get_reader(skipped) as reader:
        small = list(reader.iter_data())
    assert len(small) == len(range(0, last + 1, 3)) + (last % 3 != 0)
    assert small[0].shape == (208, 304, 3)


def test_mp4_and_gif_of_a_tabular_agent(tmp_path: Path) -> None:
    agent = make_agent("q_learning", "FrozenLake-v1", tmp_path)
    agent.learn(300)
    _, states, final_obs = native_rollout(agent, "FrozenLake-v1", seed=1, max_states=200)
    assert final_obs is not None  # FrozenLake's time limit is 100
    with imageio.get_reader(record_video(agent, tmp_path / "lake.mp4", seed=1)) as reader:
        frames = list(reader.iter_data())
    assert len(frames) == len(states) + 1 and frames[0].shape == (256, 256, 3)
    gif = record_gif(agent, tmp_path / "lake.gif", seed=1)
    assert gif.read_bytes()[:3] == b"GIF"
    # every second state, downscaled by 2; Pillow merges identical consecutive frames (the walker pushing into a
    # wall), so the file may hold fewer
    written = imageio.mimread(gif)
    assert 1 < len(written) <= len(range(0, len(states) + 1, 2)) + (len(states) % 2 != 0)
    assert written[0].shape[:2] == (128, 128)


def test_a_gymnasium_env_still_plays_on_itself(tmp_path: Path) -> None:
    agent = th.make("ppo", env="CartPole-v1", backend="gymnasium", n_envs=2, n_steps=8, minibatch_size=16,
                    run_root=str(tmp_path), progress=False, tensorboard=False, pictures=False)
    env = th.envs.make("CartPole-v1", 1, seed=0, backend="gymnasium")
    obs, length, done = env.reset(seed=0), 0, False
    while not done:
        obs, _, terminated, truncated, _ = env.step(agent.act(obs))
        done, length = bool(terminated[0] | truncated[0]), length + 1
    with imageio.get_reader(record_video(agent, tmp_path / "gym.mp4")) as reader:
        assert reader.count_frames() == length + 1


def test_bad_video_paths_and_arguments(tmp_path: Path) -> None:
    agent = make_agent("q_learning", "FrozenLake-v1", tmp_path)
    with pytest.raises(ValueError, match=r"must end in \.mp4 or \.gif"):
        record_video(agent, tmp_path / "v.avi")
    with pytest.raises(ValueError, match="record_gif writes .gif"):
        record_gif(agent, tmp_path / "v.mp4")
    with pytest.raises(ValueError, match="frame_skip must be a positive int"):
        record_video(agent, tmp_path / "v.mp4", frame_skip=0)
