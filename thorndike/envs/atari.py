"""Atari preprocessing (Mnih et al. 2015, Machado et al. 2018): the wrappers, each registered by name, and the
``atari`` preset that chains them.

``th.envs.make("ALE/Pong-v5")`` with no ``wrappers`` applies the preset ``["atari"]`` and passes ``frameskip=1`` to
the ALE env, so that the frame skip (with the max over the last two frames) is the wrapper's, not the emulator's.
Sticky actions stay at v5's ``repeat_action_probability=0.25`` (Machado et al.'s recommended protocol, which makes
the emulator stochastic so that a memorised action sequence does not score); pass
``env_kwargs={"repeat_action_probability": 0.0}`` for the deterministic emulator of the Nature DQN paper. The preset,
innermost first:

1. ``noop_reset``: a new game starts with 1..30 NOOPs (uniform, from the env's seeded generator);
2. ``max_and_skip``: each action is repeated for 4 frames, the rewards summed, and the observation is the pixelwise
   max of the last two frames (some games draw sprites on alternate frames);
3. ``game_score``: counts the raw (unclipped) score and length of the whole game, for logging and evaluation;
4. ``episodic_life``: losing a life ends the episode (``terminated=True``) but not the game: the next ``reset``
   continues the same game with one NOOP step instead of restarting it;
5. ``fire_reset``: games whose action meanings include FIRE (Pong, Breakout) press FIRE after each reset, including
   the reset after a lost life, so that play starts (a policy need not discover FIRE to see the ball move);
6. ``grayscale_resize``: RGB to luminance, resized to 84x84 by area averaging, uint8;
7. ``clip_reward``: the reward's sign, in {-1, 0, 1};
8. ``frame_stack``: the last 4 frames, observation ``(4, 84, 84)`` uint8 (Gymnasium's ``FrameStackObservation``).

What is logged: with the preset, an episode (what ``done`` marks, what the algorithm bootstraps over) is one life and
its rewards are clipped, but ``game_score`` reports each step in ``info`` ``game_return`` (the raw score of the game
so far, including the rewards of NOOP and FIRE steps taken inside resets), ``game_length`` (agent steps of the game)
and ``game_over`` (the game really ended: no lives left, or the ALE's time limit of 108,000 frames). The VecEnv
passes them on as ``info["game_over"]``, ``["game_return"]``, ``["game_length"]`` (:mod:`thorndike.envs.vec_env`);
the episode ledger then records one row per game with its raw score and length in agent steps (the training log's
``return_mean`` is the mean raw score of the last 20 games), and ``evaluate`` plays whole games and reports their raw
scores. Evaluation uses the same chain as training (the policy sees the same observations).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import FrameStackObservation

from thorndike.envs.wrappers import register_wrapper

__all__ = [
    "ATARI_PRESET",
    "ClipReward",
    "EpisodicLife",
    "FireReset",
    "GameScore",
    "GrayscaleResize",
    "MaxAndSkip",
    "NoopReset",
    "area_weights",
    "atari",
    "atari_defaults",
    "is_atari_id",
]

ATARI_PRESET = "atari"
NOOP = 0


def _action_meanings(env: gym.Env) -> list[str]:
    meanings = getattr(env.unwrapped, "get_action_meanings", None)
    return list(meanings()) if callable(meanings) else []


def _lives(env: gym.Env) -> int:
    ale = getattr(env.unwrapped, "ale", None)
    if ale is None:
        raise ValueError(f"{type(env.unwrapped).__name__} is not an ALE env (no .ale), so it has no lives to count")
    return int(ale.lives())


class NoopReset(gym.Wrapper):
    """A new game starts with k NOOP actions, k uniform in 1..``noop_max``, drawn from the env's seeded generator,
    so that a deterministic policy does not always meet the same start state."""

    def __init__(self, env: gym.Env, noop_max: int = 30) -> None:
        super().__init__(env)
        if noop_max < 1:
            raise ValueError(f"noop_max must be >= 1, got {noop_max}")
        meanings = _action_meanings(env)
        if meanings and meanings[NOOP] != "NOOP":
            raise ValueError(f"action 0 of {type(env.unwrapped).__name__} is {meanings[NOOP]}, not NOOP")
        self.noop_max = noop_max
        self.last_noops = 0  # how many the last reset took (read by tests)

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        self.last_noops = int(self.np_random.integers(1, self.noop_max + 1))
        for _ in range(self.last_noops):
            obs, _, terminated, truncated, info = self.env.step(NOOP)
            if terminated or truncated:  # a game over within the no-ops: start again without them
                obs, info = self.env.reset()
        return obs, info


class MaxAndSkip(gym.Wrapper):
    """Repeats each action for ``skip`` frames, sums their rewards, and returns the pixelwise max of the last two
    frames (Atari sprites can flicker on alternate frames). Stops early at the end of the game; the observation is
    then the max of the last two frames seen (the last frame alone when the game ended on the first).

    The env itself must not skip frames (``frameskip=1`` for ALE envs), else the skips multiply.
    """

    def __init__(self, env: gym.Env, skip: int = 4) -> None:
        super().__init__(env)
        if skip < 1:
            raise ValueError(f"skip must be >= 1, got {skip}")
        inner_skip = getattr(env.unwrapped, "_frameskip", 1)
        if inner_skip != 1:
            raise ValueError(f"the env already skips frames (frameskip={inner_skip!r}); make it with frameskip=1 "
                             f"(env_kwargs={{'frameskip': 1}}) so that the wrapper's skip of {skip} is the only one")
        self.skip = skip

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        total = 0.0
        previous = None
        obs, terminated, truncated, info = None, False, False, {}
        for _ in range(self.skip):
            previous = obs
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        pooled = obs if previous is None else np.maximum(previous, obs)
        return pooled, total, terminated, truncated, info


class GameScore(gym.Wrapper):
    """Counts the raw score and length (in steps of this wrapper) of the whole game and reports them in ``info``:
    ``game_return`` (the score so far), ``game_length`` and ``game_over`` (the env below ended: the game is over).

    Put it below ``episodic_life`` and ``clip_reward``: it then sees every step of the game (also those taken inside
    the outer wrappers' resets) with raw rewards, and its own ``reset`` is called only when a game starts.
    """

    thorndike_game_score = True  # make() looks for it to ask the VecEnv for info["game_*"]

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.game_return, self.game_length = 0.0, 0

    def _info(self, info: dict, game_over: bool) -> dict:
        return {**info, "game_return": self.game_return, "game_length": self.game_length, "game_over": game_over}

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        self.game_return, self.game_length = 0.0, 0
        return obs, self._info(info, False)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_return += float(reward)
        self.game_length += 1
        return obs, reward, terminated, truncated, self._info(info, bool(terminated or truncated))


class EpisodicLife(gym.Wrapper):
    """Losing a life ends the episode (``terminated=True``) without ending the game: the next ``reset`` takes one
    NOOP step and continues the same game; only after a real game over does ``reset`` restart the game. Training
    then sees the cost of a lost life as a terminal state (Mnih et al. 2015). Games without lives (Pong) are
    unchanged."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = bool(terminated or truncated)
        lives = _lives(self.env)
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        if self.game_over or kwargs.get("seed") is not None:  # a new game (also whenever a seed asks for one)
            obs, info = self.env.reset(**kwargs)
        else:  # a life was lost: continue the game
            obs, _, terminated, truncated, info = self.env.step(NOOP)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.game_over = False
        self.lives = _lives(self.env)
        return obs, info


class FireReset(gym.Wrapper):
    """After each reset, presses FIRE (action 1) and then action 2, as games that wait for FIRE to launch the ball
    need; a game whose action meanings lack FIRE passes through unchanged, so the preset can include it for every
    game."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        meanings = _action_meanings(env)
        self.active = len(meanings) >= 3 and meanings[1] == "FIRE"

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        if not self.active:
            return obs, info
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset()
        return obs, info


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` float32: row i averages the input cells under output cell i (the overlap of
    ``[i * s, (i + 1) * s)``, ``s = n_in / n_out``, with each input cell ``[j, j + 1)``, divided by ``s``), so a
    resize by area averaging is ``W_h @ image @ W_w.T``."""
    scale = n_in / n_out
    starts = np.arange(n_out)[:, None] * scale
    cells = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(starts + scale, cells + 1) - np.maximum(starts, cells), 0.0, None)
    return (overlap / scale).astype(np.float32)


def _sparse(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``weights`` [n_out, n_in] as (index, weight) ``[n_out, K]``, K the most non-zeros in a row (padded with
    weight 0): each output cell reads a handful of input cells, so a gather and a sum replace a matrix product (which
    would go through a BLAS whose threads, in every env copy, oversubscribe the cores: 50 times slower here)."""
    k = int((weights > 0).sum(1).max())
    index = np.argsort(weights <= 0, axis=1, kind="stable")[:, :k]  # the non-zeros first, in order
    return index, np.take_along_axis(weights, index, axis=1)


class GrayscaleResize(gym.ObservationWrapper):
    """RGB frames ``(H, W, 3)`` (or grayscale ``(H, W)``) to luminance ``0.299 R + 0.587 G + 0.114 B``, resized to
    ``(size, size)`` by area averaging (:func:`area_weights`) and rounded to uint8."""

    def __init__(self, env: gym.Env, size: int = 84) -> None:
        super().__init__(env)
        shape = env.observation_space.shape
        if shape is None or len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] != 3):
            raise ValueError(f"grayscale_resize takes (H, W, 3) or (H, W) frames, got observation shape {shape}")
        self.row_index, self.row_weight = _sparse(area_weights(shape[0], size))
        self.column_index, self.column_weight = _sparse(area_weights(shape[1], size))
        self.observation_space = gym.spaces.Box(0, 255, (size, size), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        frame = np.asarray(observation)
        if frame.ndim == 3:
            frame = frame[..., 0] * np.float32(0.299) + frame[..., 1] * np.float32(0.587) + \
                frame[..., 2] * np.float32(0.114)
        frame = frame.astype(np.float32, copy=False)
        rows = (frame[self.row_index] * self.row_weight[:, :, None]).sum(1)  # [size, W]
        resized = (rows[:, self.column_index] * self.column_weight).sum(2)  # [size, size]
        return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


class ClipReward(gym.RewardWrapper):
    """The reward's sign, in {-1, 0, 1}: one learning rate fits games whose scores differ by orders of magnitude."""

    def reward(self, reward: float) -> float:
        return float(np.sign(reward))


def frame_stack(env: gym.Env, stack: int = 4) -> gym.Env:
    """The last ``stack`` observations, oldest first, ``(stack, *frame)``; after a reset the first is repeated."""
    return FrameStackObservation(env, stack, padding_type="reset")


def atari(env: gym.Env, noop_max: int = 30, frame_skip: int = 4, screen_size: int = 84, stack: int = 4,
          episodic_life: bool = True, fire_reset: bool = True, clip_reward: bool = True) -> gym.Env:
    """The standard Atari chain (the module docstring lists it); ``noop_max=0`` drops the no-op starts and the
    booleans drop their wrappers (e.g. ``{"name": "atari", "episodic_life": False}``)."""
    if noop_max:
        env = NoopReset(env, noop_max)
    env = MaxAndSkip(env, frame_skip)
    env = GameScore(env)
    if episodic_life:
        env = EpisodicLife(env)
    if fire_reset:
        env = FireReset(env)
    env = GrayscaleResize(env, screen_size)
    if clip_reward:
        env = ClipReward(env)
    return frame_stack(env, stack)


atari.thorndike_game_score = True  # type: ignore[attr-defined]
atari.thorndike_frame_skip = True  # type: ignore[attr-defined]
# Their observations are stacks of the last frames (the replay buffer then stores each frame once).
atari.thorndike_frame_stack = True  # type: ignore[attr-defined]
frame_stack.thorndike_frame_stack = True  # type: ignore[attr-defined]
MaxAndSkip.thorndike_frame_skip = True  # type: ignore[attr-defined]


def is_atari_id(env: Any) -> bool:
    """Whether ``env`` is an ALE Gymnasium id (``"ALE/Pong-v5"``)."""
    return isinstance(env, str) and env.startswith("ALE/")


def atari_defaults(env: Any, wrappers: Sequence[Any] | None, kwargs: Mapping[str, Any]
                   ) -> tuple[Sequence[Any] | None, dict[str, Any]]:
    """The wrappers and env kwargs ``make`` uses for ``env``: an ALE id without wrappers gets ``["atari"]``; an
    ALE id whose wrappers skip frames (``atari``, ``max_and_skip``) gets ``frameskip=1`` unless it sets one. Other
    envs' wrappers are returned as given (``make`` checks them)."""
    kwargs = dict(kwargs)
    if not is_atari_id(env):
        return wrappers, kwargs
    wrappers = wrappers or [ATARI_PRESET]
    from thorndike.envs.wrappers import resolve_wrappers

    if any(getattr(fn, "thorndike_frame_skip", False) for _, fn, _ in resolve_wrappers(wrappers)):
        kwargs.setdefault("frameskip", 1)
    return wrappers, kwargs


register_wrapper("noop_reset", NoopReset)  # noop_max
register_wrapper("max_and_skip", MaxAndSkip)  # skip
register_wrapper("game_score", GameScore)
register_wrapper("episodic_life", EpisodicLife)
register_wrapper("fire_reset", FireReset)
register_wrapper("grayscale_resize", GrayscaleResize)  # size
register_wrapper("clip_reward", ClipReward)
register_wrapper("frame_stack", frame_stack)  # stack
register_wrapper(ATARI_PRESET, atari)
