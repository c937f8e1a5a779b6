"""Pictures: learning curves of one or more runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

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
        (line,) = ax.plot(steps, progress["return_mean"], label=f"{run_dir.name} (training episodes)")
        evals = [(s, e) for s, e in zip(steps, progress.get("eval_mean", [])) if not math.isnan(e)]
        if evals:
            xs, ys = zip(*evals)
            ax.plot(xs, ys, "o", color=line.get_color(), markersize=5, label=f"{run_dir.name} (evaluation)")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title or "learning curve")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
