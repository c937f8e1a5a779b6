"""The episode ledger: every finished episode of every env copy, in the order they ended.

A vectorised env reports, on every step, three fixed-shape entries in ``info``: ``done`` ``[N]`` (which copies ended
an episode on this step), ``episode_return`` ``[N]`` and ``episode_length`` ``[N]`` (for those copies, the return and
length of the episode that just ended). :meth:`EpisodeLedger.record` appends them as they are, so stepping never
waits for the device; :meth:`EpisodeLedger.flush` (once per iteration, or when something is read) moves them to the
host and keeps one row per finished episode: the env copy it ran in, its return, its length and the step it ended
on. For the tabular learners copy ``r`` is run ``r``; ``matrix("return", k)`` then gives ``[R, k]``, each run's first
``k`` returns, the form learning-curve studies average over runs.

An env whose episodes are parts of a game (Atari with ``episodic_life``: an episode is a life, with clipped rewards)
also reports ``game_over``, ``game_return`` and ``game_length`` (:data:`thorndike.envs.GAME_KEYS`); the ledger then
records games instead of episodes: one row per game, with its raw score and length.

``keep`` bounds the memory of long runs: only the newest ``keep`` episodes are kept, while ``total`` still counts
every episode ever finished.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["EpisodeLedger"]


class EpisodeLedger:
    """Every finished episode of ``n_copies`` env copies (or the newest ``keep``); a checkpoint component.

    ``columns`` holds ``copy`` (int64), ``return`` (float64), ``length`` (int64) and ``step`` (int64, the caller's
    step count when the episode ended), one entry per episode, in the order the episodes ended (by step, then by
    copy).
    """

    FIELDS = ("copy", "return", "length", "step")

    def __init__(self, n_copies: int, device: torch.device | str, keep: int | None = None) -> None:
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be None (every episode) or >= 1, got {keep}")
        self.n_copies = n_copies
        self.device = torch.device(device)
        self.keep = keep
        self._columns = _empty_columns()
        self._total = 0
        self._pending: list[tuple[Tensor, Tensor, Tensor, int]] = []

    # ---- recording (no host sync) -----------------------------------------------------------------------------

    def record(self, info: dict[str, Any], step: int) -> None:
        """Note the episodes that ended on a step from its ``info`` (``done``, ``episode_return``,
        ``episode_length``, ``[N]`` each), or the games that ended when ``info`` reports games (``game_over``,
        ``game_return``, ``game_length``); ``step`` is the caller's step count. Nothing is read back to the host."""
        if "game_over" in info:
            self._pending.append((info["game_over"], info["game_return"], info["game_length"], step))
        else:
            self._pending.append((info["done"], info["episode_return"], info["episode_length"], step))

    def append(self, copies: list[int], returns: list[float], lengths: list[int], steps: list[int]) -> None:
        """Add episodes that ended, given one by one as plain numbers in the order they ended (by step, then by copy):
        what :meth:`record` and :meth:`flush` keep for the same episodes, from a caller that played the steps without
        tensors (:mod:`thorndike.tabular.scalar`)."""
        self.flush()
        if not copies:
            return
        new = {"copy": torch.tensor(copies, dtype=torch.int64), "return": torch.tensor(returns, dtype=torch.float64),
               "length": torch.tensor(lengths, dtype=torch.int64), "step": torch.tensor(steps, dtype=torch.int64)}
        self._total += len(copies)
        first_kept = 0 if self.keep is None else -self.keep
        self._columns = {k: torch.cat([self._columns[k], new[k]])[first_kept:] for k in self.FIELDS}

    def flush(self) -> None:
        """Move the steps recorded since the last call into ``columns`` (one host transfer for all of them)."""
        if not self._pending:
            return
        done = torch.stack([p[0] for p in self._pending]).cpu()
        returns = torch.stack([p[1] for p in self._pending]).cpu().double()
        lengths = torch.stack([p[2] for p in self._pending]).cpu().long()
        steps = torch.tensor([p[3] for p in self._pending], dtype=torch.int64)
        self._pending.clear()
        t, copy = done.nonzero(as_tuple=True)  # row-major: time first, then copy, as the episodes ended
        new = {"copy": copy, "return": returns[t, copy], "length": lengths[t, copy], "step": steps[t]}
        self._total += len(copy)
        first_kept = 0 if self.keep is None else -self.keep
        self._columns = {k: torch.cat([self._columns[k], new[k]])[first_kept:] for k in self.FIELDS}

    # ---- reading ----------------------------------------------------------------------------------------------

    @property
    def columns(self) -> dict[str, Tensor]:
        """The kept episodes' fields (see the class docstring), on the host."""
        self.flush()
        return self._columns

    @property
    def total(self) -> int:
        """Episodes ever finished, including those ``keep`` has dropped."""
        self.flush()
        return self._total

    def __len__(self) -> int:
        """Episodes kept."""
        return len(self.columns["copy"])

    def recent_returns(self, k: int) -> list[float]:
        """The returns of the newest ``k`` kept episodes, oldest first."""
        returns = self.columns["return"]
        return returns[max(len(returns) - k, 0):].tolist()

    def of_copy(self, copy: int, field: str = "return") -> Tensor:
        """One copy's kept episodes' ``field`` (return, length or step), in order."""
        columns = self.columns
        return columns[field][columns["copy"] == copy]

    def matrix(self, field: str, n_copies: int | None = None, episodes: int | None = None) -> Tensor:
        """``[C, k]`` float64: copy c's first k kept episodes' ``field``, NaN where a copy has fewer; ``C`` defaults
        to every copy and k to the fewest episodes any of them finished."""
        n_copies = self.n_copies if n_copies is None else n_copies
        per_copy = [self.of_copy(c, field).double() for c in range(n_copies)]
        k = min(len(p) for p in per_copy) if episodes is None else episodes
        out = torch.full((n_copies, k), float("nan"), dtype=torch.float64)
        for c, values in enumerate(per_copy):
            out[c, : min(k, len(values))] = values[:k]
        return out

    # ---- checkpoint -------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {k: v.clone() for k, v in self.columns.items()} | {"total": self._total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pending.clear()
        self._columns = {k: state[k].clone() for k in self.FIELDS}
        self._total = int(state["total"])


def _empty_columns() -> dict[str, Tensor]:
    return {"copy": torch.zeros(0, dtype=torch.int64), "return": torch.zeros(0, dtype=torch.float64),
            "length": torch.zeros(0, dtype=torch.int64), "step": torch.zeros(0, dtype=torch.int64)}
