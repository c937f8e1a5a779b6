"""Pictures: learning curves of runs, value tables of grid problems, convergence of planners."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from thorndike.core.logger import read_progress  # noqa: E402


def learning_curves(run_dirs: Sequence[str | Path], path: str | Path, title: str | None = None) -> Path:
    """Plot each run's recent mean episode return (line) and evaluation means (dots) against env steps.

    The training return is the mean of the last finished episodes, so it holds still while no episode ends: those
    stretches are drawn dotted and faint ("no episode ended"), not as a flat line that looks learned. Runs whose
    algorithm, env and seed agree are told apart by what differs in their config.yaml, else by folder name."""
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    labels = run_labels(run_dirs)
    any_held = False
    for run_dir, name in zip(run_dirs, labels):
        progress = read_progress(run_dir)
        if not progress or "return_mean" not in progress:
            continue
        steps = progress["step"]
        fresh, held = held_stretches(steps, progress["return_mean"], progress.get("episodes"))
        (line,) = ax.plot(*fresh, label=f"{name}: training return")
        if held[0]:  # one legend entry for all runs' held stretches
            ax.plot(*held, ":", color=line.get_color(), alpha=0.5,
                    label="_" if any_held else "no episode ended: training return held")
            any_held = True
        evals = [(s, e) for s, e in zip(steps, progress.get("eval_mean", [])) if not math.isnan(e)]
        if evals:
            xs, ys = zip(*evals)
            ax.plot(xs, ys, "o", color=line.get_color(), markersize=5, label=f"{name}: deterministic evaluation")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title or ("learning curve" if len(run_dirs) != 1 else f"learning curve of {labels[0]}"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


Curve = tuple[list[float], list[float]]


def held_stretches(steps: Sequence[float], returns: Sequence[float], episodes: Sequence[float] | None
                   ) -> tuple[Curve, Curve]:
    """Split a training-return curve into the (x, y) of its stretches where episodes ended and of those where none
    did (``episodes``, the log's running count, did not grow from one row to the next), stretches of one kind
    separated by NaN so each is drawn as its own line. Without ``episodes`` the whole curve is fresh."""
    fresh: Curve = ([], [])
    held: Curve = ([], [])
    if len(steps) == 1:
        return ([steps[0]], [returns[0]]), held
    previous = None
    for i in range(1, len(steps)):
        target = held if episodes is not None and episodes[i] == episodes[i - 1] else fresh
        if target is not previous:  # a stretch of this kind starts at row i - 1
            if target[0]:
                target[0].append(math.nan)
                target[1].append(math.nan)
            target[0].append(steps[i - 1])
            target[1].append(returns[i - 1])
        target[0].append(steps[i])
        target[1].append(returns[i])
        previous = target
    return fresh, held


def seed_curves(experiment: str | Path, metric: str = "auto") -> tuple[str, list[Any], list[Any]]:
    """Each seed's curve of an experiment folder: (the column read, steps per seed, values per seed). ``metric``
    "eval" reads ``eval_mean`` (rows with an evaluation), "train" ``return_mean``, "auto" eval when every seed has
    evaluations. Seeds without a row yet are left out."""
    import numpy as np

    from thorndike.experiment import Experiment

    progress = []
    for _, run_dir in Experiment(experiment).run_dirs():
        if (run_dir / "progress.csv").is_file() and (columns := read_progress(run_dir)):
            progress.append(columns)
    if not progress:
        raise ValueError(f"{experiment} has no seed with a progress.csv row yet")
    has_eval = all(np.any(~np.isnan(p.get("eval_mean", [math.nan]))) for p in progress)
    if metric == "auto":
        metric = "eval" if has_eval else "train"
    if metric == "eval" and not has_eval:
        raise ValueError(f"not every seed of {experiment} has evaluations (train with --eval-every); use --metric "
                         "train")
    column = {"eval": "eval_mean", "train": "return_mean"}[metric]
    steps, values = [], []
    for p in progress:
        keep = ~np.isnan(np.asarray(p.get(column, []), dtype=np.float64))
        if keep.any():
            steps.append(np.asarray(p["step"])[keep])
            values.append(np.asarray(p[column])[keep])
    return column, steps, values


def experiment_labels(experiments: Sequence[str | Path]) -> list[str]:
    """Legend names from what differs between the experiments' records (algorithm, env, env kwargs, wrappers, the
    seeds' config, budget), e.g. ``lr=0.001, n_envs=8``; the algorithm and env when there is one experiment."""
    from thorndike.experiment import Experiment

    records = []
    for folder in experiments:
        experiment = Experiment(folder)
        flat = {"algo": experiment.record["algo"], "env": experiment.record["env"],
                "steps": experiment.record["steps"]}
        make = experiment.record.get("make", {})
        flat.update({f"env_kwargs.{k}": v for k, v in (make.get("env_kwargs") or {}).items()})
        flat["wrappers"] = make.get("wrappers") or []
        runs = experiment.run_dirs()
        if runs:  # the config the seeds ran with: defaults, tuned values, file and fields resolved
            config = yaml.safe_load((runs[0][1] / "config.yaml").read_text())
            flat.update(config.get("config", {}))
        records.append(flat)
    if len(records) == 1:
        return [f"{records[0]['algo']} on {records[0]['env']}"]
    keys = [k for k in records[0].keys() | set().union(*records)
            if len({yaml.safe_dump(r.get(k)) for r in records}) > 1]
    order = list(records[0]) + [k for r in records for k in r if k not in records[0]]
    keys = sorted(keys, key=order.index)
    if not keys:
        return [Path(folder).name for folder in experiments]
    return [", ".join(f"{k}={r.get(k)}" for k in keys) for r in records]


def experiment_curves(experiments: Sequence[str | Path], path: str | Path, labels: Sequence[str] | None = None,
                      metric: str = "auto", title: str | None = None) -> Path:
    """Per experiment (``train --seeds``): the mean over seeds (left) and the interquartile mean (right) of the
    evaluation or training return against steps, each with its 95% percentile-bootstrap interval over seeds
    (2000 resamples, RNG seed 0). Seeds logged at different steps are read on a common grid by linear
    interpolation (:func:`thorndike.core.statistics.common_grid`: the steps all seeds cover)."""
    import numpy as np

    from thorndike.core.statistics import bootstrap_ci, common_grid, interpolate, iqm

    if labels is not None and len(labels) != len(experiments):
        raise ValueError(f"--labels needs one name per experiment: {len(experiments)} experiments, "
                         f"{len(labels)} labels")
    labels = list(labels) if labels is not None else experiment_labels(experiments)
    fig, (ax_mean, ax_iqm) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110, sharey=True)
    columns = set()
    for experiment, label in zip(experiments, labels):
        column, steps, values = seed_curves(experiment, metric)
        columns.add(column)
        grid = common_grid(steps)
        curves = np.stack([interpolate(s, v, grid) for s, v in zip(steps, values)])
        for ax, statistic in ((ax_mean, np.mean), (ax_iqm, iqm)):
            centre = statistic(curves, axis=0)
            low, high = bootstrap_ci(curves, statistic=statistic)
            (line,) = ax.plot(grid, centre, label=f"{label} ({len(curves)} seeds)")
            ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2)
    what = " and ".join(sorted("evaluation return" if c == "eval_mean" else "training return" for c in columns))
    ax_mean.set_title("mean over seeds, 95% bootstrap CI", fontsize=10)
    ax_iqm.set_title("interquartile mean (IQM), 95% bootstrap CI", fontsize=10)
    for ax in (ax_mean, ax_iqm):
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
    ax_mean.set_ylabel(what)
    ax_mean.legend(fontsize=7, loc="best")
    fig.suptitle(title or what, fontsize=11)
    return _save(fig, path)


def runs_mean(values: Any, smooth: int = 1) -> tuple[Any, Any, Any]:
    """For ``[runs, episodes]`` values (NaN where a run has fewer episodes): the episode numbers, the mean over runs
    of each run's ``smooth``-episode moving average, and the standard error of that mean.

    Each run is smoothed first (episode k of the result averages its episodes k - smooth + 1 .. k, and exists only
    when the run has all of them); the mean and its standard error (sample standard deviation over sqrt(n)) are then
    taken across the n runs that have that value, so the band is the s.e. of exactly the line drawn. Where fewer
    than two runs have a value the standard error is NaN (no band)."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    width = max(1, min(smooth, values.shape[1]))
    per_run = np.lib.stride_tricks.sliding_window_view(values, width, axis=1).mean(axis=-1)  # NaN if incomplete
    present = ~np.isnan(per_run)
    n = present.sum(axis=0)
    total = np.where(present, per_run, 0.0).sum(axis=0)
    mean = np.divide(total, n, out=np.full(n.shape, np.nan), where=n > 0)
    squares = np.where(present, (per_run - mean) ** 2, 0.0).sum(axis=0)
    variance = np.divide(squares, n - 1, out=np.full(n.shape, np.nan), where=n > 1)
    sem = np.sqrt(variance / np.maximum(n, 1))
    return np.arange(len(mean)) + width, mean, sem


def episode_curves(curves: Mapping[str, Any], path: str | Path, title: str | None = None, smooth: int = 10,
                   ylabel: str = "return per episode") -> Path:
    """Per-episode curves of many runs: for each label a ``[runs, episodes]`` tensor or array (NaN where a run has
    fewer episodes), drawn as the mean over runs of each run's ``smooth``-episode moving average with a band of
    +/- one standard error of that mean (:func:`runs_mean`). The textbook's way of showing tabular learners (Sutton
    and Barto figures 6.4, 8.2)."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for label, values in curves.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] == 0:
            continue
        episodes, mean_s, sem_s = runs_mean(values, smooth)
        (line,) = ax.plot(episodes, mean_s, label=f"{label} ({values.shape[0]} runs)")
        ax.fill_between(episodes, mean_s - sem_s, mean_s + sem_s, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("episode")
    ax.set_ylabel(ylabel + (f" ({smooth}-episode moving average)" if smooth > 1 else ""))
    ax.set_title(title or "mean over runs, band: +/- 1 standard error of the mean")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def _save(fig: Any, path: str | Path, tight_layout: bool = True) -> Path:
    """Write ``fig`` to ``path`` (creating its folder) and free it; ``tight_layout=False`` for figures laid out
    already (constrained layout), which are cropped to their content instead."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight_layout:
        fig.tight_layout()
        fig.savefig(path)
    else:
        fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _run_label(run_dir: str | Path) -> str:
    """``algo env seed N`` from the run's config.yaml, or the folder name."""
    config = Path(run_dir) / "config.yaml"
    if not config.exists():
        return Path(run_dir).name
    data = yaml.safe_load(config.read_text())
    return f"{data['algo']} {data['env']} seed {data['seed']}"


def _flat_config(run_dir: Path) -> dict[str, str]:
    """config.yaml as ``{"lr": "0.001", "options.device": "cpu", ...}`` (config fields without their prefix)."""
    path = run_dir / "config.yaml"
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        else:
            flat[prefix.removeprefix("config.")] = str(value)

    walk("", yaml.safe_load(path.read_text()) if path.exists() else {})
    return flat


def run_labels(run_dirs: Sequence[str | Path], most: int = 3) -> list[str]:
    """One legend label per run, all different: ``algo env seed N``, and where several runs share it, up to ``most``
    of the config.yaml values that differ between them (config fields before run options), else the folder name."""
    run_dirs = [Path(r) for r in run_dirs]
    bases = [_run_label(r) for r in run_dirs]
    labels = list(bases)
    for base in dict.fromkeys(bases):
        group = [i for i, b in enumerate(bases) if b == base]
        if len(group) < 2:
            continue
        flats = {i: _flat_config(run_dirs[i]) for i in group}
        keys = sorted({k for flat in flats.values() for k in flat}, key=lambda k: (k.startswith("options."), k))
        differing = [k for k in keys if len({flats[i].get(k) for i in group}) > 1][:most]
        # alike configs: the folder names without their common "algo-env-seed-" start
        common = os.path.commonprefix([run_dirs[i].name for i in group]).rpartition("-")[0]
        for i in group:
            shown = ", ".join(f"{k.removeprefix('options.')}={flats[i].get(k, '-')}" for k in differing)
            folder = run_dirs[i].name.removeprefix(common + "-") if common else run_dirs[i].name
            labels[i] = f"{base} ({shown})" if differing else f"{base} ({folder})"
    if len(set(labels)) < len(labels):  # still alike (a folder given twice, or alike in the values shown)
        labels = [f"{label} [{run_dir.name}]" if labels.count(label) > 1 else label
                  for label, run_dir in zip(labels, run_dirs)]
    return labels


def _grid_of(mdp: Any) -> Any:
    grid = getattr(mdp, "grid", None)
    if grid is None:
        raise ValueError("plot.values draws grid problems (an MDP with a .grid, e.g. th.envs.gridworld.classic()); "
                         "for other MDPs plot the residuals with plot.convergence")
    return grid


def values(mdp: Any, solution: Any, path: str | Path, title: str | None = None, q_values: bool = True) -> Path:
    """Draw V as a heat map with the greedy policy's arrows and, beside it (``q_values``), Q(s, a) with one
    triangle per action. Walls are grey; exit cells show their reward."""
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.patches import Polygon, Rectangle

    grid = _grid_of(mdp)
    V = solution.V.double()
    Q = solution.Q.double()
    policy = solution.policy
    span = max(float(V.abs().max()), float(Q.abs().max()), 1e-9)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-span, vmax=span)
    cmap = plt.get_cmap("RdYlGn")
    cells = {grid.position(s): s for s in range(mdp.n_states) if grid.position(s) is not None}
    panels = 2 if q_values else 1
    size = max(grid.width, grid.height)
    fig, axes = plt.subplots(1, panels, figsize=(1.25 * grid.width * panels + 1.0, 1.25 * grid.height + 0.9),
                             dpi=110, squeeze=False, layout="constrained")
    font = max(5.0, 11.0 - 0.4 * size)
    for panel, ax in enumerate(axes[0]):
        show_q = panel == 1
        for x in range(1, grid.width + 1):
            for y in range(1, grid.height + 1):
                if (x, y) in grid.walls:
                    ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, color="0.45"))
                    continue
                s = cells.get((x, y))
                if s is None:
                    continue
                exit_reward = grid.exits.get((x, y))
                if show_q and exit_reward is None:
                    centre = np.array([x, y])
                    for a, (dx, dy) in enumerate(grid.action_directions):
                        # The triangle between the centre and the cell side that action a points to.
                        d, p = np.array([dx, dy]) * 0.5, np.array([-dy, dx]) * 0.5
                        tri = [centre, centre + d + p, centre + d - p]
                        ax.add_patch(Polygon(tri, closed=True, facecolor=cmap(norm(float(Q[s, a]))),
                                             edgecolor="white", linewidth=0.6))
                        tx, ty = centre + d * 0.62
                        ax.text(tx, ty, f"{float(Q[s, a]):.2f}", ha="center", va="center", fontsize=font * 0.7)
                    continue
                ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor=cmap(norm(float(V[s]))),
                                       edgecolor="white", linewidth=1.0))
                if exit_reward is not None:
                    ax.add_patch(Rectangle((x - 0.42, y - 0.42), 0.84, 0.84, fill=False, edgecolor="black"))
                    ax.text(x, y, f"exit\n{exit_reward:g}", ha="center", va="center", fontsize=font)
                    continue
                ax.text(x, y - 0.28, f"{float(V[s]):.3f}", ha="center", va="center", fontsize=font)
                dx, dy = grid.action_directions[int(policy[s])]
                ax.annotate("", xy=(x + 0.3 * dx, y + 0.05 + 0.3 * dy), xytext=(x - 0.1 * dx, y + 0.05 - 0.1 * dy),
                            arrowprops=dict(arrowstyle="-|>", color="black", lw=1.4))
        ax.set_xlim(0.5, grid.width + 0.5)
        ax.set_ylim(0.5, grid.height + 0.5)
        ax.set_aspect("equal")
        ax.set_xticks(range(1, grid.width + 1))
        ax.set_yticks(range(1, grid.height + 1))
        ax.set_title("Q(s, a) per action" if show_q else "V(s) and greedy policy", fontsize=10)
    fig.suptitle(title or "values", fontsize=11)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[0].tolist(), shrink=0.8)
    return _save(fig, path, tight_layout=False)


def convergence(results: Mapping[str, Any] | Any, path: str | Path, title: str | None = None) -> Path:
    """The max-norm residual ``max_s |V_k(s) - V_{k-1}(s)|`` per sweep (log scale), one line per planner."""
    if not isinstance(results, Mapping):
        results = {"residual": results}
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=110)
    for name, result in results.items():
        residuals = [r for r in result.residuals if r > 0]
        if residuals:
            ax.semilogy(range(1, len(residuals) + 1), residuals, marker="." if len(residuals) < 60 else None,
                        label=f"{name} ({result.sweeps} sweeps)")
    ax.set_xlabel("sweep")
    ax.set_ylabel("max |V_k - V_{k-1}|")
    ax.set_title(title or "convergence")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)
