"""Record an agent playing: frames from Gymnasium's ``rgb_array`` rendering, written as a GIF."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from thorndike.envs import env_builder


def record_gif(agent: Any, path: str | Path, episodes: int = 1, seed: int = 0, frame_skip: int = 2,
               scale: int = 2, max_frames: int = 1000, deterministic: bool = True) -> Path:
    """Play ``episodes`` episodes with ``agent.act`` and write every ``frame_skip``-th frame, downscaled by
    ``scale``, to a GIF at ``path``. Returns the path."""
    import imageio.v2 as imageio

    # Gymnasium renders with pygame; off-screen rendering needs no display, window or sound device.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    env = env_builder(agent.env_spec, **agent.env_setup.kwargs, render_mode="rgb_array")()
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
                obs, _, terminated, truncated, _ = env.step(agent.act(obs, deterministic=deterministic))
                done = terminated or truncated
                t += 1
    finally:
        env.close()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fps = max(1, int(env.metadata.get("render_fps", 30)) // frame_skip)
    imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    return path
