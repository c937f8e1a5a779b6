"""A synthetic movie-ratings table for the notes' feature-based recommender, built in code (no downloads).

Notes: 000 L402-L413 (INVENTORY A26, B6, B26): recommending from logged interactions (a Netflix viewing history is
off-policy data, L405), with Q(user, movie) generalised to Q(user_features, movie_features) (L409). The notes' example
is a 26-year-old's rating of Interstellar (a sci-fi movie); this table has the same ingredients:

- users with two features: ``age`` (5 buckets) and ``favourite_genre`` (6 genres);
- movies with two features: ``genre`` (the same 6 genres) and ``era`` (4 release periods), and a hidden quality;
- ratings 1-5 from a hidden preference of (user features, movie features) plus noise:

      mu(u, m) = 3 + LIKES_FAVOURITE * [favourite_genre(u) == genre(m)] + AGE_GENRE[age(u), genre(m)]
                   + AGE_ERA[age(u), era(m)] + quality(m)
      rating   = clip(round(mu + eps), 1, 5),   eps ~ N(0, noise^2),   quality(m) ~ N(0, quality_sd^2)

  ``expected[u, m]`` is E[rating | u, m] exactly (the rounding and clipping of a Gaussian integrated with its CDF):
  the best any scorer can know, used as the oracle;
- each user rates a random subset of the movies, drawn without replacement with probability proportional to the
  movie's popularity (log-normal, higher for better movies) times 2 in the user's favourite genre, the way people
  rate what they chose to watch.

The movie quality is what a non-personalised popularity or mean-rating baseline can pick up; the user-feature x
movie-feature preference is what the feature-based Q learns. The default sizes make the latter the larger effect, as
the notes' example assumes (a 26-year-old's taste in sci-fi says something about other 26-year-olds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

__all__ = ["AGE_ERA", "AGE_GENRE", "AGES", "ERAS", "GENRES", "Ratings", "synthetic_ratings"]

GENRES = ("action", "comedy", "drama", "sci-fi", "horror", "romance")
AGES = ("<18", "18-29", "30-44", "45-59", "60+")
ERAS = ("<1970", "1970-89", "1990-2009", "2010+")
LIKES_FAVOURITE = 1.5

# Rating shifts by age bucket (rows, as AGES) and genre (columns, as GENRES) or era (columns, as ERAS).
AGE_GENRE = (
    (0.4, 0.4, -0.5, 0.3, 0.2, -0.4),
    (0.3, 0.2, -0.1, 0.3, 0.3, 0.0),
    (0.0, 0.1, 0.2, 0.0, -0.1, 0.1),
    (-0.2, 0.0, 0.4, -0.2, -0.4, 0.2),
    (-0.4, -0.1, 0.5, -0.4, -0.6, 0.3),
)
AGE_ERA = (
    (-0.6, -0.4, 0.0, 0.6),
    (-0.4, -0.2, 0.2, 0.5),
    (-0.2, 0.1, 0.3, 0.2),
    (0.2, 0.3, 0.1, -0.2),
    (0.5, 0.3, -0.1, -0.5),
)


@dataclass
class Ratings:
    """A ratings table: rows (``user``, ``movie``, ``rating``) ``[N]`` and the features of every user and movie.

    ``user_features`` is ``[U, Fu]`` and ``movie_features`` ``[M, Fm]`` (int64 value indices; column ``i`` takes
    values ``0 .. user_sizes[i] - 1``, named by ``user_values[i]``). ``expected`` ``[U, M]`` is the hidden
    E[rating | user, movie] when the table is synthetic (None otherwise).
    """

    user: Tensor
    movie: Tensor
    rating: Tensor
    user_features: Tensor
    movie_features: Tensor
    user_feature_names: tuple[str, ...]
    movie_feature_names: tuple[str, ...]
    user_values: tuple[tuple[str, ...], ...]
    movie_values: tuple[tuple[str, ...], ...]
    expected: Tensor | None = None

    @property
    def n_users(self) -> int:
        return self.user_features.shape[0]

    @property
    def n_movies(self) -> int:
        return self.movie_features.shape[0]

    @property
    def user_sizes(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.user_values)

    @property
    def movie_sizes(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.movie_values)

    def __len__(self) -> int:
        return self.rating.shape[0]

    def rows(self, index: Tensor) -> Ratings:
        """The table with only the rows ``index`` (a bool mask or indices), same users and movies."""
        kept = {f.name: getattr(self, f.name) for f in fields(self)}
        kept.update(user=self.user[index], movie=self.movie[index], rating=self.rating[index])
        return Ratings(**kept)

    def split(self, test_fraction: float = 0.2, seed: int = 0) -> tuple[Ratings, Ratings]:
        """(train, test): each row goes to test with probability ``test_fraction``, independently."""
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        g = torch.Generator().manual_seed(seed)
        test = torch.rand(len(self), generator=g) < test_fraction
        return self.rows(~test), self.rows(test)


def _expected_rating(mu: Tensor, noise: float) -> Tensor:
    """E[clip(round(mu + eps), 1, 5)] for eps ~ N(0, noise^2): sum_k k P(rating = k) with the normal CDF."""
    def cdf(x: Tensor) -> Tensor:
        return 0.5 * (1.0 + torch.erf(x / (noise * math.sqrt(2.0))))

    # P(rating >= k) = P(mu + eps >= k - 0.5) for k = 2..5, and E[rating] = 1 + sum_{k=2}^{5} P(rating >= k).
    return 1.0 + sum(1.0 - cdf(k - 0.5 - mu) for k in (2, 3, 4, 5))


def synthetic_ratings(n_users: int = 600, n_movies: int = 300, ratings_per_user: tuple[int, int] = (20, 60),
                      noise: float = 0.8, quality_sd: float = 0.3, seed: int = 0) -> Ratings:
    """Draw the table described in the module docstring; the same ``seed`` gives the same table.

    Each user rates between ``ratings_per_user[0]`` and ``ratings_per_user[1]`` movies (uniform), so the table has
    about ``n_users * mean(ratings_per_user)`` rows, sorted by user and in the order each user rated them.
    """
    low, high = ratings_per_user
    if not 1 <= low <= high <= n_movies:
        raise ValueError(f"ratings_per_user must satisfy 1 <= low <= high <= n_movies, got {ratings_per_user}")
    g = torch.Generator().manual_seed(seed)
    age = torch.multinomial(torch.tensor([0.15, 0.3, 0.25, 0.2, 0.1]), n_users, replacement=True, generator=g)
    favourite = torch.randint(len(GENRES), (n_users,), generator=g)
    genre = torch.randint(len(GENRES), (n_movies,), generator=g)
    era = torch.multinomial(torch.tensor([0.15, 0.2, 0.3, 0.35]), n_movies, replacement=True, generator=g)
    quality = quality_sd * torch.randn(n_movies, generator=g, dtype=torch.float64)

    age_genre = torch.tensor(AGE_GENRE, dtype=torch.float64)
    age_era = torch.tensor(AGE_ERA, dtype=torch.float64)
    mu = (3.0 + LIKES_FAVOURITE * (favourite[:, None] == genre[None, :]).double()
          + age_genre[age][:, genre] + age_era[age][:, era] + quality[None, :])  # [U, M]
    expected = _expected_rating(mu, noise)

    # Which movies each user rates: popularity (better movies are more popular) x 2 in the favourite genre.
    popularity = torch.exp(torch.randn(n_movies, generator=g, dtype=torch.float64) + 2.0 * quality)
    weights = popularity[None, :] * (1.0 + (favourite[:, None] == genre[None, :]).double())
    chosen = torch.multinomial(weights, high, replacement=False, generator=g)  # [U, high], in drawing order
    counts = torch.randint(low, high + 1, (n_users,), generator=g)
    keep = torch.arange(high)[None, :] < counts[:, None]
    user = torch.arange(n_users)[:, None].expand(-1, high)[keep]
    movie = chosen[keep]
    noisy = mu[user, movie] + noise * torch.randn(len(user), generator=g, dtype=torch.float64)
    rating = noisy.round().clamp(1.0, 5.0)
    return Ratings(
        user=user, movie=movie, rating=rating,
        user_features=torch.stack([age, favourite], 1), movie_features=torch.stack([genre, era], 1),
        user_feature_names=("age", "favourite_genre"), movie_feature_names=("genre", "era"),
        user_values=(AGES, GENRES), movie_values=(GENRES, ERAS), expected=expected,
    )
