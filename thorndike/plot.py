"""Pictures: learning curves of one or more runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from thorndike.core.logger import read_progress  # noqa: E402


def learning_curves(run_dirs: Sequence[str | Path], path: str | Path, title: str | None = None) -> Path:
    """Plot each run's recent mean episode return (line) and evaluation means (dots) against env steps."""
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        progress = read_progress(run_dir)
        if not progress:
            continue
        steps = progress["step"]
        name = _run_label(run_dir)
        (line,) = ax.plot(steps, progress["return_mean"], label=f"{name}: training episodes (last 20)")
        evals = [(s, e) for s, e in zip(steps, progress.get("eval_mean", [])) if not math.isnan(e)]
        if evals:
            xs, ys = zip(*evals)
            ax.plot(xs, ys, "o", color=line.get_color(), markersize=5, label=f"{name}: deterministic evaluation")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title or ("learning curve" if len(run_dirs) != 1 else f"learning curve of {_run_label(run_dirs[0])}"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _run_label(run_dir: str | Path) -> str:
    """``algo env seed N`` from the run's config.yaml, or the folder name."""
    config = Path(run_dir) / "config.yaml"
    if not config.exists():
        return Path(run_dir).name
    data = yaml.safe_load(config.read_text())
    return f"{data['algo']} {data['env']} seed {data['seed']}"
