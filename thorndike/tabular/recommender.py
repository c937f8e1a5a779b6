"""The notes' feature-based recommender: Q(user feature, movie feature) learned from logged ratings.

Notes: 000 L402-L413 (INVENTORY A26, B6, B26, C23, E11). Q(user, movie) does not generalise (a new user or movie has
no entry), so the notes key it by features, Q(user_features, movie_features), initialised to 0 (L409-L410), and for
each row of the dataset (one user's rating of one movie) update every combination of one user feature and one movie
feature (L412) with

    Q(f_u, f_m) <- Q(f_u, f_m) + alpha * (user_rating - Q(f_u, f_m))                 (L413)

the tabular rule of Q-learning with the rating as the target (it is a bandit: no next state). Each cell therefore
tracks the mean rating of the rows that fall in it: with alpha = 1/n (``alpha_schedule="1/n"``) it is exactly the
running mean, with a constant alpha an exponentially weighted one (INVENTORY C23: Q=0, alpha=0.1, rating=4 -> 0.4;
repeated updates converge to the cell's mean rating).

E11: the notes' worked example on L411 writes ``Q += alpha * (avg_rating_of_Interstellar - user_rating)``, which
has no Q on the right: it does not move Q toward anything, it accumulates the cell's (movie mean - rating) gaps with
the sign reversed, so Q drifts without limit and ranks the liked movies lowest. This module implements L413; the
tests show the difference.

Batches. ``update`` takes a minibatch of rows and gives exactly the result of applying them one by one in order
(``update_sequential``, kept for the C23 checks), without a Python loop over rows: a cell hit k times in the batch
by ratings r_1..r_k ends at (1 - alpha)^k Q + sum_j alpha (1 - alpha)^(k - j) r_j (constant alpha), or at
(n Q + sum_j r_j) / (n + k) after n earlier updates (alpha = 1/n); both are one ``scatter_add_`` per batch.

Scoring. A (user, movie) pair is scored by the mean of its Fu x Fm cells; ``recommend(user, k)`` returns the k
best-scoring movies the user has not rated. :func:`per_user_auc` measures on held-out ratings how often a movie the
user liked (rating >= 4) is scored above one they did not, per user (non-personalised baselines such as popularity
would otherwise be credited for users who rate everything high).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from thorndike.core.targets import incremental_update
from thorndike.envs.recommender import Ratings

__all__ = ["FeatureQ", "item_mean_scores", "per_user_auc", "popularity_scores"]

ALPHA_SCHEDULES = ("constant", "1/n")


class FeatureQ:
    """Q[user feature value, movie feature value] for every pair (user feature i, movie feature j).

    ``user_features`` ``[U, Fu]`` and ``movie_features`` ``[M, Fm]`` hold each user's and movie's feature values
    (int64, column i in ``0 .. user_sizes[i] - 1``). The Fu x Fm tables live in one flat float64 vector ``q``;
    :meth:`table` gives one of them as a ``[user_sizes[i], movie_sizes[j]]`` view. Not an env-stepping agent: it
    learns from a table of logged ratings with :meth:`fit` (off-policy data, 000 L405).
    """

    def __init__(self, user_features: Tensor, movie_features: Tensor, user_sizes: tuple[int, ...] | None = None,
                 movie_sizes: tuple[int, ...] | None = None, alpha: float = 0.1, alpha_schedule: str = "constant",
                 q_init: float = 0.0) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if alpha_schedule not in ALPHA_SCHEDULES:
            raise ValueError(f"alpha_schedule must be one of {ALPHA_SCHEDULES}, got {alpha_schedule!r}")
        self.user_features = user_features.long()
        self.movie_features = movie_features.long()
        self.user_sizes = tuple(user_sizes or (int(c.max()) + 1 for c in self.user_features.T))
        self.movie_sizes = tuple(movie_sizes or (int(c.max()) + 1 for c in self.movie_features.T))
        self.alpha, self.alpha_schedule, self.q_init = float(alpha), alpha_schedule, float(q_init)
        self.pairs = [(i, j) for i in range(len(self.user_sizes)) for j in range(len(self.movie_sizes))]
        sizes = torch.tensor([self.user_sizes[i] * self.movie_sizes[j] for i, j in self.pairs])
        self.block_start = torch.cumsum(sizes, 0) - sizes
        self.n_cells = int(sizes.sum())
        self.q = torch.full((self.n_cells,), self.q_init, dtype=torch.float64)
        self.counts = torch.zeros(self.n_cells, dtype=torch.int64)  # updates of each cell so far
        self.rated = torch.zeros(self.n_users, self.n_movies, dtype=torch.bool)  # (user, movie) pairs seen in fit

    @classmethod
    def for_ratings(cls, ratings: Ratings, **kwargs: Any) -> FeatureQ:
        """A learner sized for a :class:`~thorndike.envs.recommender.Ratings` table's users, movies and features."""
        return cls(ratings.user_features, ratings.movie_features, ratings.user_sizes, ratings.movie_sizes, **kwargs)

    @property
    def n_users(self) -> int:
        return self.user_features.shape[0]

    @property
    def n_movies(self) -> int:
        return self.movie_features.shape[0]

    def table(self, user_feature: int, movie_feature: int) -> Tensor:
        """The table Q[user feature value, movie feature value] of one feature pair (a view of ``q``)."""
        p = self.pairs.index((user_feature, movie_feature))
        rows, cols = self.user_sizes[user_feature], self.movie_sizes[movie_feature]
        start = int(self.block_start[p])
        return self.q[start: start + rows * cols].view(rows, cols)

    def cells(self, users: Tensor, movies: Tensor) -> Tensor:
        """The flat indices of the Fu x Fm cells of each (user, movie) row, ``[N, Fu * Fm]`` (distinct per row)."""
        uf, mf = self.user_features[users], self.movie_features[movies]
        columns = [self.block_start[p] + uf[:, i] * self.movie_sizes[j] + mf[:, j] for p, (i, j) in
                   enumerate(self.pairs)]
        return torch.stack(columns, 1)

    # ---- learning -------------------------------------------------------------------------------------------

    def update_sequential(self, users: Tensor, movies: Tensor, ratings: Tensor) -> None:
        """The notes' rule row by row, in order (a Python loop over rows: the reference the batched form must
        equal, and the literal reading of L412-L413)."""
        cells = self.cells(users, movies)
        ratings = ratings.double()
        for b in range(len(ratings)):
            c = cells[b]
            alpha = 1.0 / (self.counts[c] + 1).double() if self.alpha_schedule == "1/n" else self.alpha
            self.q[c] = incremental_update(self.q[c], ratings[b], alpha)
            self.counts[c] += 1
        self.rated[users, movies] = True

    def update(self, users: Tensor, movies: Tensor, ratings: Tensor) -> None:
        """A minibatch of rows at once, equal (up to rounding) to :meth:`update_sequential` on the same rows."""
        cells = self.cells(users, movies).reshape(-1)  # row-major: a cell's entries stay in row order
        r = ratings.double().repeat_interleave(len(self.pairs))
        hits = torch.bincount(cells, minlength=self.n_cells)
        touched = hits > 0
        if self.alpha_schedule == "1/n":
            sums = torch.zeros(self.n_cells, dtype=torch.float64).scatter_add_(0, cells, r)
            n = self.counts.double()
            new = (n * self.q + sums) / (n + hits).clamp_min(1)
            self.q = torch.where(touched, new, self.q)
        else:
            # Entry j of a cell hit k times is followed by (k - 1 - rank_j) later updates of that cell, each of
            # which multiplies what it contributed by (1 - alpha).
            later = hits[cells] - 1 - _rank_within_groups(cells)
            keep = 1.0 - self.alpha
            contributions = self.alpha * keep ** later.double() * r
            sums = torch.zeros(self.n_cells, dtype=torch.float64).scatter_add_(0, cells, contributions)
            self.q = keep ** hits.double() * self.q + sums
        self.counts += hits
        self.rated[users, movies] = True

    def fit(self, ratings: Ratings, passes: int = 1, batch_size: int = 1024, shuffle: bool = True,
            seed: int = 0) -> FeatureQ:
        """``passes`` passes over the table's rows in minibatches of ``batch_size`` (shuffled each pass)."""
        g = torch.Generator().manual_seed(seed)
        for _ in range(passes):
            order = torch.randperm(len(ratings), generator=g) if shuffle else torch.arange(len(ratings))
            for start in range(0, len(order), batch_size):
                rows = order[start: start + batch_size]
                self.update(ratings.user[rows], ratings.movie[rows], ratings.rating[rows])
        return self

    # ---- scoring --------------------------------------------------------------------------------------------

    def score(self, users: Tensor, movies: Tensor) -> Tensor:
        """The mean of each (user, movie) pair's Q cells, ``[N]``."""
        return self.q[self.cells(users, movies)].mean(1)

    def score_matrix(self, users: Tensor | None = None) -> Tensor:
        """Scores of every movie for ``users`` (default all), ``[len(users), M]``."""
        users = torch.arange(self.n_users) if users is None else users
        u = users.repeat_interleave(self.n_movies)
        m = torch.arange(self.n_movies).repeat(len(users))
        return self.score(u, m).view(len(users), self.n_movies)

    def recommend(self, user: int, k: int = 10) -> Tensor:
        """The ``k`` best-scoring movies ``user`` has not rated (in the data given to ``fit``/``update``), best
        first."""
        scores = self.score_matrix(torch.tensor([user]))[0]
        scores = torch.where(self.rated[user], -torch.inf, scores)
        k = min(k, int((~self.rated[user]).sum()))
        return torch.topk(scores, k).indices

    # ---- state ----------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"q": self.q.clone(), "counts": self.counts.clone(), "rated": self.rated.clone(),
                "alpha": self.alpha, "alpha_schedule": self.alpha_schedule, "q_init": self.q_init,
                "user_sizes": self.user_sizes, "movie_sizes": self.movie_sizes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state["user_sizes"]) != self.user_sizes or tuple(state["movie_sizes"]) != self.movie_sizes:
            raise ValueError("this state is for other feature sizes: "
                             f"{state['user_sizes']} x {state['movie_sizes']}, not {self.user_sizes} x "
                             f"{self.movie_sizes}")
        if state["rated"].shape != self.rated.shape:
            raise ValueError(f"this state is for {tuple(state['rated'].shape)} users x movies, not "
                             f"{tuple(self.rated.shape)}")
        self.q = state["q"].clone()
        self.counts = state["counts"].clone()
        self.rated = state["rated"].clone()
        self.alpha, self.alpha_schedule, self.q_init = state["alpha"], state["alpha_schedule"], state["q_init"]


def _rank_within_groups(values: Tensor) -> Tensor:
    """For each entry, how many earlier entries have the same value (0 for a value's first occurrence)."""
    order = torch.sort(values, stable=True).indices
    ordered = values[order]
    position = torch.arange(len(values))
    first = torch.ones(len(values), dtype=torch.bool)
    first[1:] = ordered[1:] != ordered[:-1]
    group_start = torch.where(first, position, 0).cummax(0).values
    rank = torch.empty_like(position)
    rank[order] = position - group_start
    return rank


# ---- baselines and evaluation ---------------------------------------------------------------------------------


def popularity_scores(train: Ratings) -> Tensor:
    """Non-personalised: how many training ratings each movie has, ``[M]`` (float64)."""
    return torch.bincount(train.movie, minlength=train.n_movies).double()


def item_mean_scores(train: Ratings) -> Tensor:
    """Non-personalised: each movie's mean training rating ``[M]`` (the overall mean for a movie nobody rated)."""
    counts = torch.bincount(train.movie, minlength=train.n_movies).double()
    sums = torch.zeros(train.n_movies, dtype=torch.float64).scatter_add_(0, train.movie, train.rating.double())
    return torch.where(counts > 0, sums / counts.clamp_min(1), train.rating.double().mean())


def per_user_auc(test: Ratings, scores: Tensor, like_threshold: float = 4.0) -> float:
    """The mean over users of the AUC of ``scores`` on their held-out ratings: the probability that a movie the
    user liked (rating >= ``like_threshold``) scores above one they did not (ties count 1/2). Users whose held-out
    ratings are all liked or all not liked are skipped.

    ``scores`` is ``[U, M]`` (a personalised scorer) or ``[M]`` (the same score for every user). Random scores
    give 0.5 in expectation.
    """
    if scores.dim() == 1:
        scores = scores.unsqueeze(0).expand(test.n_users, -1)
    users, row_scores = test.user, scores[test.user, test.movie].double()
    liked = test.rating >= like_threshold
    # Pad each user's held-out rows into one row of a [U, K] matrix, then compare all pairs within a user.
    counts = torch.bincount(users, minlength=test.n_users)
    order = torch.sort(users, stable=True).indices
    start = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(users)) - start[users[order]]
    k = int(counts.max()) if len(users) else 0
    s = torch.zeros(test.n_users, k, dtype=torch.float64)
    pos = torch.zeros(test.n_users, k, dtype=torch.bool)
    neg = torch.zeros(test.n_users, k, dtype=torch.bool)
    s[users[order], slot] = row_scores[order]
    pos[users[order], slot] = liked[order]
    neg[users[order], slot] = ~liked[order]
    wins = (s[:, :, None] > s[:, None, :]).double() + 0.5 * (s[:, :, None] == s[:, None, :]).double()
    pairs = pos[:, :, None] & neg[:, None, :]
    n_pairs = pairs.sum((1, 2))
    per_user = (wins * pairs).sum((1, 2)) / n_pairs.clamp_min(1)
    valid = n_pairs > 0
    return float(per_user[valid].mean())
