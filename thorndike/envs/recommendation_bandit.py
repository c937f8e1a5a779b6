"""Recommendation as a contextual bandit: a simulated user arrives, one item is recommended, a click or a rating
comes back. Every expected reward is known in closed form, so the oracle policy and every agent's regret are exact.

Notes: 000 L402-L413 (INVENTORY A26, B6, B26): recommending from logged interactions, with Q(user, movie) keyed by
features, Q(user_features, movie_features). The world reuses the feature structure of
:func:`thorndike.envs.recommender.synthetic_ratings` (same ages, genres, eras and the same hidden preference
tables), so the notes' ``FeatureQ`` can be the logging policy of off-policy evaluation (``thorndike.bandits``):

- a context is a user's observable features (``age``: 5 buckets, ``favourite_genre``: 6 genres), 30 contexts, drawn
  with the ages' population shares and a uniform favourite genre; the observation is their one-hot code (11 floats);
- ``n_items`` items with a ``genre``, an ``era`` and a hidden ``quality`` ~ N(0, quality_sd^2), fixed by
  ``world_seed``;
- each arriving user also has a latent taste for each genre, ~ N(0, taste_sd^2), which nobody observes. The rating of
  item m by a user of context c is

      mu(c, m) = 3 + LIKES_FAVOURITE [favourite(c) == genre(m)] + AGE_GENRE[age(c), genre(m)]
                   + AGE_ERA[age(c), era(m)] + quality(m)
      rating   = clip(round(mu(c, m) + taste(genre(m)) + eps), 1, 5),   eps ~ N(0, noise^2)

  and a click is a rating of 4 or more. A user is seen once (a fresh user every step), so given the context the
  taste and the noise add up to one Gaussian of standard deviation s = sqrt(noise^2 + taste_sd^2), and

      E[click  | c, m] = P(mu + s z >= 3.5) = 1 - Phi((3.5 - mu) / s)
      E[rating | c, m] = the rounded and clipped Gaussian's mean (``thorndike.envs.recommender._expected_rating``)

  exactly: ``expected`` ``[30, n_items]``, the best any policy that sees the context can do.

:class:`RecommendationWorld` holds these tables and draws contexts and rewards for many independent runs at once
(torch, no Python loop over runs): the bandit agents and the benchmark use it directly. :class:`RecommendationBandit`
is the same world as a Gymnasium env (``thorndike/RecommendationBandit-v0``): each episode is one user and one
recommendation (``terminated`` after one step), so any Discrete-action agent (``dqn`` through ``th.make``) can learn
it; the env adds up the exact expected regret of the actions it receives (``total_regret``, ``steps``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from thorndike.envs.recommender import AGE_ERA, AGE_GENRE, AGES, ERAS, GENRES, LIKES_FAVOURITE, _expected_rating

__all__ = ["AGE_SHARES", "REWARDS", "RecommendationBandit", "RecommendationWorld", "recommendation_world"]

REWARDS = ("click", "rating")
AGE_SHARES = (0.15, 0.3, 0.25, 0.2, 0.1)
"""How often each age bucket arrives (as ``synthetic_ratings`` draws its users); favourite genres are uniform."""

CLICK_THRESHOLD = 3.5  # a rating of 4 or more, before rounding


@dataclass
class RecommendationWorld:
    """The world's fixed tables (float64 unless said): contexts ``c = age * 6 + favourite``.

    ``context_attributes`` ``[C, 2]`` (int64: age, favourite genre), ``context_probs`` ``[C]``, ``item_attributes``
    ``[A, 2]`` (int64: genre, era), ``quality`` ``[A]``, ``mu`` ``[C, A]`` (mean rating before taste and noise),
    ``expected`` ``[C, A]`` (exact expected reward), ``reward`` (``"click"`` or ``"rating"``) and ``scale`` (the
    standard deviation s of taste plus noise).
    """

    context_attributes: Tensor
    context_probs: Tensor
    item_attributes: Tensor
    quality: Tensor
    mu: Tensor
    expected: Tensor
    reward: str
    scale: float

    @property
    def n_contexts(self) -> int:
        return self.expected.shape[0]

    @property
    def n_items(self) -> int:
        return self.expected.shape[1]

    @property
    def best_value(self) -> Tensor:
        """max_a E[reward | c, a] for every context ``[C]``: the oracle's expected reward."""
        return self.expected.amax(1)

    @property
    def oracle_value(self) -> float:
        """The oracle policy's expected reward per step, sum_c P(c) max_a E[reward | c, a]."""
        return float((self.context_probs * self.best_value).sum())

    def policy_value(self, probs: Tensor) -> float:
        """The exact expected reward per step of a policy pi(a | c) given as ``probs`` ``[C, A]``."""
        return float((self.context_probs[:, None] * probs.double() * self.expected).sum())

    def regret(self, contexts: Tensor, actions: Tensor) -> Tensor:
        """The expected regret of each (context, action): max_a E[r | c, a] - E[r | c, action] (same shape)."""
        return self.best_value[contexts] - self.expected[contexts, actions]

    def observation(self, contexts: Tensor) -> Tensor:
        """One-hot age then one-hot favourite genre, ``[..., 11]`` float32: what a user shows of themselves."""
        attrs = self.context_attributes[contexts]
        return torch.cat([torch.nn.functional.one_hot(attrs[..., 0], len(AGES)),
                          torch.nn.functional.one_hot(attrs[..., 1], len(GENRES))], -1).float()

    def context_features(self) -> Tensor:
        """``[C, 12]`` float64: a constant 1, then the observation. E[rating | c, a] before rounding is linear in
        these for each item separately (a disjoint linear model per arm)."""
        ones = torch.ones(self.n_contexts, 1, dtype=torch.float64)
        return torch.cat([ones, self.observation(torch.arange(self.n_contexts)).double()], 1)

    def joint_features(self) -> Tensor:
        """``[C, A, d]`` float64 features of each (context, item) for one shared linear model: age x genre and
        age x era one-hots, [favourite == genre], and a one-hot of the item (its quality). ``mu`` is exactly linear in
        them; the expected click is a smooth monotone function of ``mu``."""
        age, fav = self.context_attributes[:, 0], self.context_attributes[:, 1]
        genre, era = self.item_attributes[:, 0], self.item_attributes[:, 1]
        one_hot = torch.nn.functional.one_hot
        age_genre = one_hot(age[:, None] * len(GENRES) + genre[None, :], len(AGES) * len(GENRES))
        age_era = one_hot(age[:, None] * len(ERAS) + era[None, :], len(AGES) * len(ERAS))
        liked = (fav[:, None] == genre[None, :])[..., None]
        item = one_hot(torch.arange(self.n_items), self.n_items)[None].expand(self.n_contexts, -1, -1)
        return torch.cat([age_genre, age_era, liked, item], -1).double()

    def sample_contexts(self, shape: tuple[int, ...] | int, generator: torch.Generator | None = None) -> Tensor:
        """Arriving users' contexts, int64 of ``shape``, drawn from ``context_probs``."""
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        n = math.prod(shape)
        return torch.multinomial(self.context_probs, n, replacement=True, generator=generator).view(shape)

    def sample_rewards(self, contexts: Tensor, actions: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One fresh user per entry: rating = clip(round(mu + s z), 1, 5), z ~ N(0, 1); float64, shape of
        ``contexts``. A click is ``rating >= 4``."""
        z = torch.randn(contexts.shape, generator=generator, dtype=torch.float64)
        latent = self.mu[contexts, actions] + self.scale * z
        if self.reward == "click":
            return (latent >= CLICK_THRESHOLD).double()
        return latent.round().clamp(1.0, 5.0)


def recommendation_world(n_items: int = 20, reward: str = "click", noise: float = 0.8, taste_sd: float = 0.5,
                         quality_sd: float = 0.3, world_seed: int = 0) -> RecommendationWorld:
    """The world of the module docstring; the same arguments give the same items and tables."""
    if reward not in REWARDS:
        raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
    if n_items < 2:
        raise ValueError(f"a recommendation needs n_items >= 2 items to choose from, got {n_items}")
    if noise <= 0 or taste_sd < 0 or quality_sd < 0:
        raise ValueError(f"noise must be > 0 and taste_sd, quality_sd >= 0, got {noise}, {taste_sd}, {quality_sd}")
    g = torch.Generator().manual_seed(world_seed)
    genre = torch.randint(len(GENRES), (n_items,), generator=g)
    era = torch.multinomial(torch.tensor([0.15, 0.2, 0.3, 0.35]), n_items, replacement=True, generator=g)
    quality = quality_sd * torch.randn(n_items, generator=g, dtype=torch.float64)
    age = torch.arange(len(AGES)).repeat_interleave(len(GENRES))
    fav = torch.arange(len(GENRES)).repeat(len(AGES))
    probs = torch.tensor(AGE_SHARES, dtype=torch.float64)[age] / len(GENRES)
    mu = (3.0 + LIKES_FAVOURITE * (fav[:, None] == genre[None, :]).double()
          + torch.tensor(AGE_GENRE, dtype=torch.float64)[age][:, genre]
          + torch.tensor(AGE_ERA, dtype=torch.float64)[age][:, era] + quality[None, :])
    scale = math.sqrt(noise**2 + taste_sd**2)
    if reward == "click":
        expected = 0.5 * torch.erfc((CLICK_THRESHOLD - mu) / (scale * math.sqrt(2.0)))
    else:
        expected = _expected_rating(mu, scale)
    return RecommendationWorld(torch.stack([age, fav], 1), probs, torch.stack([genre, era], 1), quality, mu,
                               expected, reward, scale)


class RecommendationBandit(gym.Env):
    """The world as a Gymnasium env: observe a user (11 one-hot floats), recommend one of ``n_items`` items, get a
    click (0/1) or a rating (1-5); the episode ends after that one step. ``info`` has the ``context`` index and the
    step's exact ``expected_reward`` and ``regret``; ``total_regret`` and ``steps`` add them up over the env's life.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, n_items: int = 20, reward: str = "click", noise: float = 0.8, taste_sd: float = 0.5,
                 quality_sd: float = 0.3, world_seed: int = 0) -> None:
        self.world = recommendation_world(n_items, reward, noise, taste_sd, quality_sd, world_seed)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (len(AGES) + len(GENRES),), np.float32)
        self.action_space = gym.spaces.Discrete(n_items)
        self.generator = torch.Generator().manual_seed(0)
        self.context = 0
        self.total_regret, self.steps = 0.0, 0

    def _observe(self) -> np.ndarray:
        return self.world.observation(torch.tensor(self.context)).numpy()

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self.generator.manual_seed(seed)
        self.context = int(self.world.sample_contexts(1, self.generator)[0])
        return self._observe(), {"context": self.context}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an item index in 0..{self.world.n_items - 1}, got {action!r}")
        c, a = torch.tensor([self.context]), torch.tensor([int(action)])
        reward = float(self.world.sample_rewards(c, a, self.generator)[0])
        regret = float(self.world.regret(c, a)[0])
        self.total_regret += regret
        self.steps += 1
        info = {"context": self.context, "expected_reward": float(self.world.expected[c, a][0]), "regret": regret}
        return self._observe(), reward, True, False, info


if "thorndike/RecommendationBandit-v0" not in gym.registry:
    gym.register("thorndike/RecommendationBandit-v0", entry_point=f"{__name__}:RecommendationBandit",
                 disable_env_checker=True, order_enforce=False)
