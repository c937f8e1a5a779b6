"""The feature-based recommender (notes 000 L402-L413): the L413 rule (C23), the L411 error (E11), batched = one row
at a time, scoring and recommending, held-out ranking against baselines, and the synthetic table itself."""

from __future__ import annotations

import pytest
import torch

from thorndike.envs.recommender import Ratings, _expected_rating, synthetic_ratings
from thorndike.tabular.recommender import FeatureQ, item_mean_scores, per_user_auc, popularity_scores


def tiny_table(user: list[int], movie: list[int], rating: list[float], user_features: list[list[int]],
               movie_features: list[list[int]]) -> Ratings:
    uf, mf = torch.tensor(user_features), torch.tensor(movie_features)
    return Ratings(user=torch.tensor(user), movie=torch.tensor(movie), rating=torch.tensor(rating, dtype=torch.float64),
                   user_features=uf, movie_features=mf,
                   user_feature_names=tuple(f"u{i}" for i in range(uf.shape[1])),
                   movie_feature_names=tuple(f"m{j}" for j in range(mf.shape[1])),
                   user_values=tuple(tuple(str(v) for v in range(int(c.max()) + 1)) for c in uf.T),
                   movie_values=tuple(tuple(str(v) for v in range(int(c.max()) + 1)) for c in mf.T))


@pytest.fixture(scope="module")
def data() -> tuple[Ratings, Ratings, Ratings]:
    table = synthetic_ratings(seed=0)
    return table, *table.split(0.2, seed=0)


def test_c23_one_update_from_zero_with_alpha_0_1_and_rating_4_gives_0_4() -> None:
    # Q = 0, alpha = 0.1, rating 4: Q <- 0 + 0.1 (4 - 0) = 0.4 in each of the row's Fu x Fm = 2 x 2 cells.
    for batched in (False, True):
        model = FeatureQ(torch.tensor([[1, 2]]), torch.tensor([[0, 3]]), (3, 4), (2, 5), alpha=0.1)
        step = model.update if batched else model.update_sequential
        step(torch.tensor([0]), torch.tensor([0]), torch.tensor([4.0]))
        assert model.table(0, 0)[1, 0] == pytest.approx(0.4)  # (user feature 0 = 1, movie feature 0 = 0)
        assert model.table(0, 1)[1, 3] == pytest.approx(0.4)
        assert model.table(1, 0)[2, 0] == pytest.approx(0.4)
        assert model.table(1, 1)[2, 3] == pytest.approx(0.4)
        assert int((model.q != 0).sum()) == 4  # nothing else moved


def test_c23_repeated_updates_converge_to_the_mean_rating_of_the_cell() -> None:
    # One cell (every user and movie share the feature values); its ratings 5, 3, 4, 2 have mean 3.5.
    ratings = torch.tensor([5.0, 3.0, 4.0, 2.0])
    users, movies = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 0, 1])
    model = FeatureQ(torch.zeros(4, 1, dtype=torch.long), torch.zeros(2, 1, dtype=torch.long), alpha=0.01)
    for _ in range(2000):
        model.update_sequential(users, movies, ratings)
    # Cycling through the four ratings, a constant alpha keeps Q within O(alpha * spread) of the mean.
    assert float(model.q[0]) == pytest.approx(3.5, abs=0.03)
    exact = FeatureQ(torch.zeros(4, 1, dtype=torch.long), torch.zeros(2, 1, dtype=torch.long), alpha_schedule="1/n")
    for _ in range(3):
        exact.update_sequential(users, movies, ratings)
        assert float(exact.q[0]) == pytest.approx(3.5, abs=1e-12)  # alpha = 1/n: the running mean, exactly


def test_e11_the_l411_rule_drifts_away_while_the_l413_rule_converges_to_the_cell_mean() -> None:
    # Interstellar (movie 0, sci-fi) is rated 5, 5, 4 by three 26-year-olds (users 0-2, age feature 0) and 1, 2, 1
    # by three others (users 3-5, age feature 1): its mean rating is 3, the 26-year-olds' cell mean 14/3.
    users, movies = torch.arange(6), torch.zeros(6, dtype=torch.long)
    ratings = torch.tensor([5.0, 5.0, 4.0, 1.0, 2.0, 1.0])
    age = torch.tensor([[0], [0], [0], [1], [1], [1]])
    alpha, passes = 0.1, 100
    # The notes' L411: Q(age=26, sci-fi) += alpha (avg rating of Interstellar - user rating). Its increments do not
    # depend on Q: each pass adds alpha * ((3 - 5) + (3 - 5) + (3 - 4)) = -0.5, so after 100 passes Q = -50, and
    # it keeps falling: the cell the 26-year-olds love gets the lowest value there is.
    q_l411 = 0.0
    average = float(ratings.mean())
    for _ in range(passes):
        for r in ratings[:3].tolist():
            q_l411 += alpha * (average - r)
    assert q_l411 == pytest.approx(-50.0)
    # The rule of L413 (this module) converges to the cell's mean rating, and ranks the 26-year-olds' cell first.
    model = FeatureQ(age, torch.zeros(1, 1, dtype=torch.long), alpha=alpha)
    for _ in range(passes):
        model.update_sequential(users, movies, ratings)
    cell_26, cell_other = float(model.table(0, 0)[0, 0]), float(model.table(0, 0)[1, 0])
    assert abs(cell_26 - 14 / 3) < 0.3 and abs(cell_other - 4 / 3) < 0.3
    assert abs(q_l411 - 14 / 3) > 50


@pytest.mark.parametrize("schedule", ["constant", "1/n"])
def test_a_batch_equals_the_rows_one_at_a_time(data, schedule: str) -> None:
    _, train, _ = data
    rows = train.rows(torch.arange(4000))
    batched = FeatureQ.for_ratings(train, alpha=0.2, alpha_schedule=schedule, q_init=1.0)
    sequential = FeatureQ.for_ratings(train, alpha=0.2, alpha_schedule=schedule, q_init=1.0)
    for start in range(0, 4000, 1000):  # several batches, so that earlier counts matter for 1/n
        part = slice(start, start + 1000)
        batched.update(rows.user[part], rows.movie[part], rows.rating[part])
    sequential.update_sequential(rows.user, rows.movie, rows.rating)
    assert int(torch.bincount(batched.cells(rows.user, rows.movie).reshape(-1)).max()) > 100  # many repeats
    torch.testing.assert_close(batched.q, sequential.q, rtol=0, atol=1e-12)
    assert torch.equal(batched.counts, sequential.counts) and torch.equal(batched.rated, sequential.rated)


def test_one_pass_with_alpha_one_over_n_gives_every_cell_its_mean_rating(data) -> None:
    _, train, _ = data
    model = FeatureQ.for_ratings(train, alpha_schedule="1/n").fit(train, passes=1, batch_size=777)
    age, favourite = train.user_features[train.user].T
    genre, era = train.movie_features[train.movie].T
    for (i, j), (fu, fm) in {(0, 0): (age, genre), (0, 1): (age, era), (1, 0): (favourite, genre),
                             (1, 1): (favourite, era)}.items():
        table = model.table(i, j)
        for a in range(table.shape[0]):
            for b in range(table.shape[1]):
                in_cell = (fu == a) & (fm == b)
                expected = float(train.rating[in_cell].mean()) if bool(in_cell.any()) else 0.0
                assert float(table[a, b]) == pytest.approx(expected, abs=1e-9)


def test_score_is_the_mean_of_the_cells_and_recommend_skips_rated_movies() -> None:
    # 1 user feature x 1 movie feature: score = the one cell. Users 0, 1 have feature 0; movies have features
    # 0, 1, 2, 1. Rows: user 0 rates movie 0 with 2, user 1 rates movie 1 with 5, user 1 rates movie 2 with 4.
    # alpha = 1: each cell becomes its last rating, Q[0] = (2, 5, 4) for movie features (0, 1, 2).
    table = tiny_table([0, 1, 1], [0, 1, 2], [2.0, 5.0, 4.0], [[0], [0]], [[0], [1], [2], [1]])
    model = FeatureQ.for_ratings(table, alpha=1.0).fit(table, shuffle=False)
    torch.testing.assert_close(model.score_matrix(), torch.tensor([[2.0, 5.0, 4.0, 5.0]] * 2, dtype=torch.float64))
    assert model.recommend(0, k=2).tolist() == [1, 3] or model.recommend(0, k=2).tolist() == [3, 1]
    assert sorted(model.recommend(0, k=10).tolist()) == [1, 2, 3]  # movie 0 is rated by user 0
    assert model.recommend(1, k=1).tolist() == [3]  # user 1 rated movies 1 and 2
    # Two feature pairs: the score averages them. User feature values (0, 1), movie (2, 0): cells Q00[0,2] = 1 and
    # Q01[0,0] = 3, Q10[1,2] = 0, Q11[1,0] = 4 -> score (1 + 3 + 0 + 4) / 4 = 2.
    two = FeatureQ(torch.tensor([[0, 1]]), torch.tensor([[2, 0]]), (1, 2), (3, 1))
    two.table(0, 0)[0, 2], two.table(0, 1)[0, 0], two.table(1, 1)[1, 0] = 1.0, 3.0, 4.0
    assert float(two.score(torch.tensor([0]), torch.tensor([0]))) == pytest.approx(2.0)


def test_per_user_auc_by_hand() -> None:
    # User 0 held out: movie 0 liked (5) score 0.9, movie 1 not (2) score 0.5, movie 2 not (3) score 0.9:
    # pairs (0,1) win, (0,2) tie -> (1 + 0.5) / 2 = 0.75. User 1: movie 0 liked (4) score 0.1, movie 1 not (1) score
    # 0.2 -> 0. User 2 only liked ratings: skipped. Mean = (0.75 + 0) / 2 = 0.375.
    test = tiny_table([0, 0, 0, 1, 1, 2], [0, 1, 2, 0, 1, 0], [5.0, 2.0, 3.0, 4.0, 1.0, 5.0], [[0], [0], [0]],
                      [[0], [0], [0]])
    scores = torch.tensor([[0.9, 0.5, 0.9], [0.1, 0.2, 0.0], [0.0, 0.0, 0.0]])
    assert per_user_auc(test, scores) == pytest.approx(0.375)
    assert per_user_auc(test, torch.tensor([1.0, 0.0, 0.5])) == pytest.approx((1.0 + 1.0) / 2)  # [M]: same for all


def test_held_out_ranking_beats_random_popularity_and_item_means(data) -> None:
    # Measured on this table (600 users, 300 movies, 24,273 ratings, 20% held out): per-user AUC of liked (>= 4)
    # vs not liked held-out movies: FeatureQ 1/n 0.797, constant alpha=0.02 one pass 0.795; item mean 0.624;
    # popularity 0.510; uniform random scores 0.499; the hidden E[rating] (oracle) 0.840.
    table, train, test = data
    exact = per_user_auc(test, FeatureQ.for_ratings(train, alpha_schedule="1/n").fit(train).score_matrix())
    constant = per_user_auc(test, FeatureQ.for_ratings(train, alpha=0.02).fit(train).score_matrix())
    popularity = per_user_auc(test, popularity_scores(train))
    item_mean = per_user_auc(test, item_mean_scores(train))
    random = per_user_auc(test, torch.rand(table.n_users, table.n_movies, generator=torch.Generator().manual_seed(0)))
    oracle = per_user_auc(test, table.expected)
    assert abs(random - 0.5) < 0.03
    assert popularity < 0.6 and item_mean < 0.7
    assert exact > 0.75 and constant > 0.75
    assert min(exact, constant) > max(popularity, item_mean) + 0.1
    assert exact < oracle < 0.9  # nothing beats knowing the hidden preference


def test_state_dict_round_trip_and_split_fit(data) -> None:
    _, train, _ = data
    whole = FeatureQ.for_ratings(train, alpha=0.05)
    whole.update(train.user[:5000], train.movie[:5000], train.rating[:5000])
    whole.update(train.user[5000:9000], train.movie[5000:9000], train.rating[5000:9000])
    first = FeatureQ.for_ratings(train, alpha=0.05)
    first.update(train.user[:5000], train.movie[:5000], train.rating[:5000])
    resumed = FeatureQ.for_ratings(train, alpha=0.5)  # its own alpha is replaced by the state's
    resumed.load_state_dict(first.state_dict())
    assert torch.equal(resumed.q, first.q) and resumed.alpha == 0.05
    resumed.update(train.user[5000:9000], train.movie[5000:9000], train.rating[5000:9000])
    assert torch.equal(resumed.q, whole.q) and torch.equal(resumed.rated, whole.rated)
    with pytest.raises(ValueError, match="feature sizes"):
        FeatureQ(train.user_features, train.movie_features, (5, 7), (6, 4)).load_state_dict(first.state_dict())


def test_the_synthetic_table() -> None:
    make = dict(n_users=50, n_movies=40, ratings_per_user=(10, 30), seed=3)
    a, b = synthetic_ratings(**make), synthetic_ratings(**make)
    assert torch.equal(a.rating, b.rating) and torch.equal(a.movie, b.movie)
    assert set(a.rating.unique().tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    per_user = torch.bincount(a.user, minlength=50)
    assert int(per_user.min()) >= 10 and int(per_user.max()) <= 30
    pairs = a.user * 40 + a.movie
    assert len(pairs.unique()) == len(pairs)  # no movie rated twice by one user
    # E[clip(round(mu + eps), 1, 5)] by the CDF formula against 400,000 samples, for a few mu.
    mu = torch.tensor([0.3, 2.2, 3.5, 4.9, 6.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    samples = (mu + 0.8 * torch.randn(400_000, 5, generator=g, dtype=torch.float64)).round().clamp(1, 5)
    torch.testing.assert_close(_expected_rating(mu, 0.8), samples.mean(0), rtol=0, atol=0.01)
