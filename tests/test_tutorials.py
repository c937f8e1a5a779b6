"""Every tutorial in docs/tutorials runs to its end at the reduced budget of ``--quick`` and draws its figure."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).parent.parent / "docs" / "tutorials").glob("*.py"))


def test_there_are_tutorials() -> None:
    assert TUTORIALS, "docs/tutorials holds no tutorial"


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_a_tutorial_runs_quickly_and_draws_its_figure(path: Path, tmp_path: Path) -> None:
    tutorial = runpy.run_path(str(path))  # as a module: __main__ does not run
    figure = Path(tutorial["main"](["--quick", "--out", str(tmp_path)]))
    assert figure.suffix == ".png" and figure.parent == tmp_path
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000
