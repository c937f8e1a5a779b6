"""Record an agent playing: frames from Gymnasium's ``rgb_array`` rendering, written as a GIF."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from thorndike.envs import env_builder
from thorndike.envs.wrappers import apply_wrappers


def record_gif(agent: Any, path: str | Path, episodes: int = 1, seed: int = 0, frame_skip: int = 2,
               scale: int = 2, max_frames: int = 1000, deterministic: bool = True) -> Path:
    """Play ``episodes`` episodes with ``agent.act`` and write every ``frame_skip``-th frame, downscaled by
    ``scale``, to a GIF at ``path``. Returns the path."""
    import imageio.v2 as imageio

    # Gymnasium renders with pygame; off-screen rendering needs no display, window or sound device.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    env = _rendering_env(agent)
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    frames: list[np.ndarray] = []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            done, t = False, 0
            while not done and len(frames) < max_frames:
                if t % frame_skip == 0:
                    frame = env.render()
                    if frame is None:
                        raise ValueError(f"{agent.env_spec} cannot render rgb_array frames, so no video")
                    frames.append(np.ascontiguousarray(frame[::scale, ::scale]))
                action = agent.act(obs, deterministic=deterministic)
                # a Discrete env wants a plain int, not the 0-d array act() answers a single observation with
                obs, _, terminated, truncated, _ = env.step(int(action) if discrete else action)
                done = terminated or truncated
                t += 1
    finally:
        env.close()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fps = max(1, int(env.metadata.get("render_fps", 30)) // frame_skip)
    imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    return path


def _rendering_env(agent: Any) -> gym.Env:
    """One copy of the agent's env (its kwargs and wrappers) that renders ``rgb_array`` frames. A user's env
    factory that takes no ``render_mode`` is built without it and must already render that way."""
    setup = agent.env_setup
    try:
        env = env_builder(setup.env, **setup.kwargs, render_mode="rgb_array")()
    except TypeError as err:
        if "render_mode" not in str(err):
            raise
        env = env_builder(setup.env, **setup.kwargs)()
    if getattr(env, "render_mode", None) != "rgb_array":
        env.close()
        raise ValueError(f"{setup.name} does not render rgb_array frames (its render_mode is "
                         f"{getattr(env, 'render_mode', None)!r}), so no video; let its factory take render_mode")
    return apply_wrappers(env, setup.wrappers)
