"""The run's log: one row per iteration in ``progress.csv`` and the same scalars as TensorBoard events.

Columns are fixed by the first row. Wall-clock columns (``time/*``) are kept apart from the learning columns
so that two runs with the same seed can be compared row for row.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from thorndike.core.checkpoint import write_atomically


class Logger:
    """Append rows to ``progress.csv`` and TensorBoard; on resume, drop rows past the checkpoint's step."""

    def __init__(self, run_dir: str | Path, resume_step: int | None = None, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "progress.csv"
        self.columns: list[str] | None = None
        if resume_step is not None and self.path.exists():
            self._truncate_after(resume_step)
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step discards the events the interrupted run wrote after the checkpoint; the row of the
            # checkpoint's own step was written before it and stays.
            self._writer = SummaryWriter(str(self.run_dir),
                                         purge_step=None if resume_step is None else resume_step + 1)

    def _truncate_after(self, step: int) -> None:
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            return
        self.columns = list(rows[0].keys())
        kept = [r for r in rows if int(float(r["step"])) <= step]
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self.columns)
        writer.writeheader()
        writer.writerows(kept)
        # Atomic: a kill during a resume leaves the old file or the cut one, never an empty one.
        write_atomically(self.path, text.getvalue().encode())

    def log(self, step: int, row: dict[str, Any]) -> None:
        """Write one row (``step`` first) to the CSV and each finite number to TensorBoard."""
        row = {"step": step, **row}
        if self.columns is None:
            self.columns = list(row.keys())
            new_file = not self.path.exists() or self.path.stat().st_size == 0
            if new_file:
                with open(self.path, "w", newline="") as f:
                    csv.DictWriter(f, fieldnames=self.columns).writeheader()
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore").writerow(
                {k: _fmt(row.get(k)) for k in self.columns}
            )
        if self._writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, int | float) and math.isfinite(value):
                    self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None


def _fmt(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # full precision, so equal runs give equal files
    return value


def read_progress(run_dir: str | Path) -> dict[str, list[float]]:
    """``progress.csv`` as columns of floats (empty cells become NaN)."""
    with open(Path(run_dir) / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: [float(r[k]) if r[k] != "" else math.nan for r in rows] for k in rows[0]}
