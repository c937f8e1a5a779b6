"""The notes' feature-based recommender (000 L402-L413) on synthetic ratings: held-out ranking quality while it
learns, against non-personalised baselines, and the learned Q[user feature, movie feature] next to the hidden
preference.

    .venv/bin/python benchmarks/recommender.py [--seeds 0 1 2 3 4] [--passes 3]

For each seed a new table (thorndike.envs.recommender.synthetic_ratings: 600 users, 300 movies, about 24,000
ratings) is split 80/20; the learners read the training rows in shuffled minibatches of 256 and the per-user AUC of
liked (rating >= 4) against not-liked held-out movies is measured every 1/16 of a pass. Writes
benchmarks/results/recommender.{png,json} and recommender_q_tables.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from thorndike.envs.recommender import synthetic_ratings  # noqa: E402
from thorndike.tabular.recommender import FeatureQ, item_mean_scores, per_user_auc, popularity_scores  # noqa: E402

RESULTS = Path(__file__).parent / "results"
LEARNERS = {"FeatureQ, alpha = 0.1": dict(alpha=0.1), "FeatureQ, alpha = 0.02": dict(alpha=0.02),
            "FeatureQ, alpha = 1/n (cell means)": dict(alpha_schedule="1/n")}
BATCH = 256
POINTS_PER_PASS = 16


def learning_curve(train, test, settings: dict, passes: int, seed: int) -> tuple[list[float], list[float], FeatureQ]:
    model = FeatureQ.for_ratings(train, **settings)
    g = torch.Generator().manual_seed(seed)
    x, auc = [0.0], [per_user_auc(test, model.score_matrix())]
    n_batches = -(-len(train) // BATCH)
    # Evaluate after the batches that end the k-th sixteenth of each pass (the same number of points for any table).
    marks = {round(n_batches * k / POINTS_PER_PASS) - 1: k for k in range(1, POINTS_PER_PASS + 1)}
    for p in range(passes):
        order = torch.randperm(len(train), generator=g)
        for b in range(n_batches):
            rows = order[b * BATCH: (b + 1) * BATCH]
            model.update(train.user[rows], train.movie[rows], train.rating[rows])
            if b in marks:
                x.append(p + marks[b] / POINTS_PER_PASS)
                auc.append(per_user_auc(test, model.score_matrix()))
    return x, auc, model


def hidden_cell_means(table, user_feature: int, movie_feature: int) -> torch.Tensor:
    """The mean of the hidden E[rating] over every (user, movie) pair in each cell (rated or not)."""
    fu = table.user_features[:, user_feature]
    fm = table.movie_features[:, movie_feature]
    rows, cols = table.user_sizes[user_feature], table.movie_sizes[movie_feature]
    sums = torch.zeros(rows, cols, dtype=torch.float64)
    counts = torch.zeros(rows, cols, dtype=torch.float64)
    cell = (fu[:, None] * cols + fm[None, :]).reshape(-1)
    sums.view(-1).scatter_add_(0, cell, table.expected.reshape(-1))
    counts.view(-1).scatter_add_(0, cell, torch.ones_like(table.expected.reshape(-1)))
    return sums / counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)

    curves: dict[str, list[list[float]]] = {name: [] for name in LEARNERS}
    baselines: dict[str, list[float]] = {"popularity: number of ratings": [], "movie mean rating": [],
                                         "random scores": [], "oracle: hidden E[rating]": []}
    x: list[float] = []
    models = {}
    for seed in args.seeds:
        table = synthetic_ratings(seed=seed)
        train, test = table.split(0.2, seed=seed)
        for name, settings in LEARNERS.items():
            x, auc, model = learning_curve(train, test, settings, args.passes, seed)
            curves[name].append(auc)
            if seed == args.seeds[0]:
                models[name] = (model, table)
        g = torch.Generator().manual_seed(seed)
        baselines["popularity: number of ratings"].append(per_user_auc(test, popularity_scores(train)))
        baselines["movie mean rating"].append(per_user_auc(test, item_mean_scores(train)))
        baselines["random scores"].append(per_user_auc(test, torch.rand(table.n_users, table.n_movies, generator=g)))
        baselines["oracle: hidden E[rating]"].append(per_user_auc(test, table.expected))
        print(f"seed {seed}: {len(train)} train / {len(test)} test rows; final AUC "
              + ", ".join(f"{n}: {c[-1][-1]:.3f}" for n, c in curves.items())
              + "; " + ", ".join(f"{n}: {v[-1]:.3f}" for n, v in baselines.items()), flush=True)

    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=120)
    for name, runs in curves.items():
        values = torch.tensor(runs)
        (line,) = ax.plot(x, values.mean(0), lw=1.4, label=name)
        ax.fill_between(x, values.min(0).values, values.max(0).values, color=line.get_color(), alpha=0.2, lw=0)
    styles = ["--", "-.", ":", (0, (5, 1))]
    for (name, values), style in zip(baselines.items(), styles):
        ax.axhline(sum(values) / len(values), color="black" if "oracle" in name else "grey", ls=style, lw=1.0,
                   label=f"{name} (fit on all training rows)" if "oracle" not in name and "random" not in name
                   else name)
    ax.set_xlabel("passes over the training ratings")
    ax.set_ylabel("held-out per-user AUC (liked >= 4 vs not)")
    ax.set_ylim(0.45, 0.9)
    ax.set_title(f"Feature-based Q recommender on synthetic ratings: mean over {len(args.seeds)} tables "
                 "(band: min-max)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower right")
    fig.tight_layout()
    fig.savefig(RESULTS / "recommender.png")
    plt.close(fig)

    model, table = models["FeatureQ, alpha = 1/n (cell means)"]
    panels = [(1, 0, "favourite genre (user)", "genre (movie)"), (0, 1, "age (user)", "era (movie)")]
    fig, axes = plt.subplots(2, 2, figsize=(10, 8), dpi=110)
    for row, (i, j, ylabel, xlabel) in enumerate(panels):
        learned, hidden = model.table(i, j), hidden_cell_means(table, i, j)
        low = float(torch.minimum(learned.min(), hidden.min()))
        high = float(torch.maximum(learned.max(), hidden.max()))
        for col, (values, title) in enumerate([(learned, f"learned Q (alpha = 1/n, {args.passes} passes)"),
                                               (hidden, "hidden: mean E[rating] over all pairs in the cell")]):
            ax = axes[row, col]
            image = ax.imshow(values, cmap="viridis", vmin=low, vmax=high, aspect="auto")
            for a in range(values.shape[0]):
                for b in range(values.shape[1]):
                    ax.text(b, a, f"{float(values[a, b]):.2f}", ha="center", va="center", fontsize=7, color="white")
            ax.set_xticks(range(values.shape[1]), table.movie_values[j], fontsize=8)
            ax.set_yticks(range(values.shape[0]), table.user_values[i], fontsize=8)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_title(title, fontsize=9)
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label="rating")
    fig.suptitle(f"Q[user feature, movie feature] learned from the training ratings of table {args.seeds[0]} vs the "
                 "hidden preference\n(the learned cells sit above the hidden means where users rate their favourite "
                 "genre more often: selection bias of logged data)", fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / "recommender_q_tables.png")
    plt.close(fig)

    summary = {
        "seeds": args.seeds, "passes": args.passes, "batch_size": BATCH, "like_threshold": 4.0,
        "final_auc": {name: [round(c[-1], 4) for c in runs] for name, runs in curves.items()},
        "auc_after_one_pass": {name: [round(c[x.index(1.0)], 4) for c in runs] for name, runs in curves.items()},
        "baseline_auc": {name: [round(v, 4) for v in values] for name, values in baselines.items()},
        "mean_final_auc": {name: round(sum(c[-1] for c in runs) / len(runs), 4) for name, runs in curves.items()},
        "mean_baseline_auc": {name: round(sum(v) / len(v), 4) for name, v in baselines.items()},
        "curve_x_passes": [round(v, 4) for v in x],
        "mean_curves": {name: [round(v, 4) for v in torch.tensor(runs).mean(0).tolist()]
                        for name, runs in curves.items()},
    }
    (RESULTS / "recommender.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
