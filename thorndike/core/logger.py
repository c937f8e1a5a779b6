"""The run's log: one row per iteration in ``progress.csv`` and the same scalars as TensorBoard events.

Columns are fixed by the first row. Wall-clock columns (``time/*``) are kept apart from the learning columns
so that two runs with the same seed can be compared row for row.
"""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path
from typing import Any

from thorndike.core.checkpoint import write_atomically


class Logger:
    """Append rows to ``progress.csv`` and TensorBoard; on resume, drop rows past the checkpoint's step."""

    def __init__(self, run_dir: str | Path, resume_step: int | None = None, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "progress.csv"
        self.columns: list[str] | None = None
        if resume_step is not None:
            self._truncate_after(resume_step)
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step discards the events the interrupted run wrote after the checkpoint; the row of the
            # checkpoint's own step was written before it and stays.
            self._writer = SummaryWriter(str(self.run_dir),
                                         purge_step=None if resume_step is None else resume_step + 1)

    def _truncate_after(self, step: int) -> None:
        """Keep the rows up to the checkpoint's ``step``. A resumed run never stops on a damaged log: a row cut by a
        kill (no line end, too few fields, a step that is not a number) is dropped, and a file that is not text or
        has gone is set aside or restarted, each with a warning that says which rows are lost."""
        if not self.path.exists():
            warnings.warn(f"{self.path} is missing: the rows up to step {step} are lost; the resumed run writes a new "
                          "one from there", stacklevel=3)
            return
        try:
            text = self.path.read_bytes().decode("utf-8")
            lines = text.splitlines(keepends=True)
            self.columns = next(csv.reader([lines[0]])) if lines else None
        except (UnicodeDecodeError, csv.Error):
            self.columns = None
        if not self.columns or self.columns[0] != "step" or not lines[0].endswith("\n"):
            aside = self.path.with_name("progress.csv.damaged")
            self.path.replace(aside)
            warnings.warn(f"{self.path} is not a thorndike log (set aside as {aside.name}): the rows up to step {step} "
                          "are lost; the resumed run writes a new one from there", stacklevel=3)
            self.columns = None
            return
        kept, dropped = [], 0
        for line in lines[1:]:
            fields = next(csv.reader([line]), [])
            row_step = _number(fields[0]) if fields else None
            if not line.endswith("\n") or len(fields) != len(self.columns) or row_step is None:
                dropped += 1  # a row a kill cut short: it is past the checkpoint, which is written after its row
            elif row_step <= step:
                kept.append(line)
        if dropped:
            warnings.warn(f"{self.path}: dropped {dropped} incomplete row(s) written when the run was interrupted",
                          stacklevel=3)
        # Atomic: a kill during a resume leaves the old file or the cut one, never an empty one.
        write_atomically(self.path, (lines[0] + "".join(kept)).encode())

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


def _number(text: str) -> float | None:
    """``text`` as a number, or None when it is not one (a field cut by a kill)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


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
