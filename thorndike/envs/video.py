"""Record an agent playing, as an MP4 (H.264, through imageio's ffmpeg plugin) or a GIF.

Frames come from Gymnasium's ``rgb_array`` rendering. An agent trained on a Gymnasium env plays on one rendering copy
of it (its kwargs and wrappers). An agent trained on a native torch env (:mod:`thorndike.envs.batched`) plays on one
copy of that native env, so the video shows the native env's own trajectory: after the reset and after every step,
the native state is written into the Gymnasium twin of the same id (``state`` for classic control, ``s`` for toy
text, with the last action where the picture shows it) and the twin only draws it; it is never stepped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from thorndike.envs import env_builder
from thorndike.envs.wrappers import apply_wrappers

FORMATS = ("mp4", "gif")
"""The video formats, chosen by the path's suffix."""

# H.264 codes 16x16 macro blocks; frames are padded to a multiple of this, so imageio never resizes them (it warns
# when it does) and every player decodes them.
_MACRO_BLOCK = 16


def record_video(agent: Any, path: str | Path, episodes: int = 1, seed: int = 0, frame_skip: int | None = None,
                 scale: int | None = None, max_frames: int = 1000, deterministic: bool = True) -> Path:
    """Play ``episodes`` episodes with ``agent.act`` (episode ``i`` from seed ``seed + i``) and write every
    ``frame_skip``-th state of each (and its last one), downscaled by ``scale``, to ``path``. Returns the path.

    The suffix chooses the format: ``.mp4`` (H.264 by the ffmpeg binary that ships in the ``imageio-ffmpeg``
    wheel) or ``.gif``. ``frame_skip`` and ``scale`` default to 1 for MP4 and 2 for GIF (GIFs grow fast with
    frames and pixels). At most ``max_frames`` frames are written; a longer run is cut there.
    """
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in FORMATS:
        raise ValueError(f"a video path must end in {' or '.join('.' + f for f in FORMATS)}, got {str(path)!r}")
    frame_skip = (1 if kind == "mp4" else 2) if frame_skip is None else frame_skip
    scale = (1 if kind == "mp4" else 2) if scale is None else scale
    for name, value in (("frame_skip", frame_skip), ("scale", scale), ("max_frames", max_frames),
                        ("episodes", episodes)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    writer = _mp4_writer if kind == "mp4" else _gif_writer  # fail on a missing plugin before playing
    frames: list[np.ndarray] = []
    fps = 30
    for frame, twin in play_frames(agent, episodes, seed, frame_skip, max_frames, deterministic):
        frames.append(np.ascontiguousarray(frame[::scale, ::scale]))
        fps = max(1, int(twin.metadata.get("render_fps", 30)) // frame_skip)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer(path, frames, fps)
    return path


def record_gif(agent: Any, path: str | Path, episodes: int = 1, seed: int = 0, frame_skip: int = 2,
               scale: int = 2, max_frames: int = 1000, deterministic: bool = True) -> Path:
    """:func:`record_video` to a GIF (``path`` must end in ``.gif``)."""
    if Path(path).suffix.lower() != ".gif":
        raise ValueError(f"record_gif writes .gif files, got {str(path)!r}; use record_video for MP4")
    return record_video(agent, path, episodes, seed, frame_skip, scale, max_frames, deterministic)


def play_frames(agent: Any, episodes: int = 1, seed: int = 0, frame_skip: int = 1, max_frames: int = 1000,
                deterministic: bool = True) -> Iterator[tuple[np.ndarray, gym.Env]]:
    """Play with ``agent.act`` and yield ``(rgb frame, rendering env)`` for every ``frame_skip``-th state of each
    episode and its last one, ``max_frames`` at most. The rendering env is the Gymnasium env that drew the frame
    (for a native env, its twin holding the native state), as it was when it drew it."""
    # Gymnasium renders with pygame; off-screen rendering needs no display, window or sound device.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    native = _native_env(agent)
    twin = _rendering_env(agent)
    try:
        play = _play_native if native is not None else _play_gymnasium
        count = 0
        for episode in range(episodes):
            # the states of one episode, each rendered just after it is put in (or reached by) the twin
            for t, last in play(agent, native, twin, seed + episode, deterministic):
                if t % frame_skip == 0 or last:
                    frame = twin.render()
                    if frame is None:
                        raise ValueError(f"{agent.env_spec} cannot render rgb_array frames, so no video")
                    yield frame, twin
                    count += 1
                    if count >= max_frames:
                        return
    finally:
        twin.close()
        if native is not None:
            native.close()


def _play_gymnasium(agent: Any, native: None, env: gym.Env, seed: int,
                    deterministic: bool) -> Iterator[tuple[int, bool]]:
    """One episode on the Gymnasium env itself: yields ``(t, is last state)`` with the env in state ``t``."""
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    obs, _ = env.reset(seed=seed)
    t, done = 0, False
    while not done:
        yield t, False  # state t is drawn before the step moves on from it
        action = agent.act(obs, deterministic=deterministic)
        # a Discrete env wants a plain int, not the 0-d array act() answers a single observation with
        obs, _, terminated, truncated, _ = env.step(int(action) if discrete else action)
        done = terminated or truncated
        t += 1
    yield t, True


def _play_native(agent: Any, native: Any, twin: gym.Env, seed: int, deterministic: bool) -> Iterator[tuple[int, bool]]:
    """One episode on one copy of the native env, its first episode only (no autoreset), each state written into
    ``twin`` before it is yielded as ``(t, is last state)``. The native env's time limit ends it as a truncation."""
    twin.reset(seed=seed)  # clears what the picture shows of the last action (toy text's lastaction, last_u)
    state = native.begin_episodes(seed)
    _show_state(twin, state[0], None)
    limit = native.max_episode_steps
    t, done = 0, False
    while not done:
        yield t, False
        actions = agent.act(native.observe(state), deterministic=deterministic)
        state, _, terminated = native.continue_episodes(state, actions)
        t += 1
        # One host read per step: the episode's end decides what is played next; a video is not the hot path.
        done = bool(terminated[0]) or (limit is not None and t >= limit)
        _show_state(twin, state[0], torch.as_tensor(actions).reshape(-1).cpu().numpy())
    yield t, True


def _show_state(twin: gym.Env, state: torch.Tensor, action: np.ndarray | None) -> None:
    """Put the native ``state`` (one copy's row) into the Gymnasium twin, with the action that led there where its
    picture shows it (toy text's ``lastaction``: FrozenLake's walker, Taxi's heading; Pendulum's torque arrow)."""
    base = twin.unwrapped
    if state.dtype.is_floating_point:  # classic control: the physical state, columns as in the Gymnasium env
        base.state = state.detach().cpu().numpy().astype(np.float64)
        if hasattr(base, "last_u"):
            high = float(np.max(twin.action_space.high))
            base.last_u = None if action is None else float(np.clip(action[0], -high, high))
    else:  # toy text: the state index
        base.s = int(state)
        if hasattr(base, "lastaction"):
            base.lastaction = None if action is None else int(action[0])


def _native_env(agent: Any) -> Any:
    """One copy of the agent's env on the CPU when it is a native torch env with a Gymnasium twin of the same id;
    None when the agent plays on Gymnasium (then its own copy renders)."""
    from thorndike.envs.batched import BatchedEnv

    setup = agent.env_setup
    if setup is None:
        raise ValueError(f"{agent.name} has no env, so no video")
    if not isinstance(setup.env, str) or setup.env not in gym.registry:
        return None
    env = setup.make(1, torch.device("cpu"))
    if isinstance(env, BatchedEnv) and env.env_id == setup.env:
        return env
    env.close()
    return None


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


def _mp4_writer(path: Path, frames: list[np.ndarray], fps: int) -> None:
    """H.264 in yuv420p (what browsers and players decode), frames edge-padded to whole macro blocks."""
    try:
        import imageio_ffmpeg  # noqa: F401  (the plugin ships the ffmpeg binary; nothing is downloaded)
    except ImportError as err:
        raise ImportError("MP4 videos need the imageio-ffmpeg package: pip install imageio-ffmpeg "
                          "(or write a .gif)") from err
    import imageio.v2 as imageio

    with imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
                            macro_block_size=_MACRO_BLOCK, ffmpeg_log_level="error") as writer:
        for frame in frames:
            writer.append_data(_pad_to_blocks(frame))


def _gif_writer(path: Path, frames: list[np.ndarray], fps: int) -> None:
    import imageio.v2 as imageio

    imageio.mimsave(path, frames, duration=1000 / fps, loop=0)


def _pad_to_blocks(frame: np.ndarray) -> np.ndarray:
    """``frame`` grown on the bottom and right, by repeating its edge, to a multiple of the macro block size."""
    height, width = frame.shape[:2]
    pad_h, pad_w = -height % _MACRO_BLOCK, -width % _MACRO_BLOCK
    if not (pad_h or pad_w):
        return frame
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
