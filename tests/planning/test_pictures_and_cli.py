"""What a person sees of the planners: the value table, the pictures, and `thorndike plan`."""

from __future__ import annotations

from pathlib import Path

import pytest

import thorndike as th
from thorndike.cli import gridworld_table, main
from thorndike.envs.gridworld import format_values


def test_format_values_lays_out_the_grid_as_in_the_notes() -> None:
    mdp = th.envs.gridworld.classic(noise=0.0, gamma=0.9)
    solution = th.planning.value_iteration(mdp, gamma=0.9)
    lines = format_values(mdp, solution.V, solution.policy).splitlines()
    # top row y=3: 0.81 0.9^... from (1,3): 0.9^3 = 0.729, (2,3) = 0.81, (3,3) = 0.9, then the +1 exit
    assert lines[0].split()[1:] == ["0.729", "E", "0.810", "E", "0.900", "E", "exit+1"]
    assert "#" in lines[1] and "exit-1" in lines[1]
    assert lines[2].split()[1] == f"{0.9 ** 5:.3f}"


def test_the_notes_table_is_reproduced() -> None:
    rows = gridworld_table().splitlines()[2:]
    assert rows[0].split("|")[2:7] == [" 1.0000 ", " 1.0000 ", " 1.0000 ", " 1.0000 ", " -1.0000 "]
    assert rows[1].split("|")[2:7] == [" 1.0000 ", " 0.9000 ", " 0.8100 ", f" {0.9 ** 5:.4f} ", " -1.0000 "]


def test_pictures_are_written_and_refuse_non_grid_problems(tmp_path: Path) -> None:
    mdp = th.envs.gridworld.classic()
    vi = th.planning.value_iteration(mdp, gamma=0.9)
    assert th.plot.values(mdp, vi, tmp_path / "v.png").read_bytes()[:4] == b"\x89PNG"
    assert th.plot.convergence({"vi": vi}, tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    taxi = th.envs.toy_text.taxi()
    with pytest.raises(ValueError, match="plot.values draws grid problems"):
        th.plot.values(taxi, th.planning.value_iteration(taxi, gamma=0.9), tmp_path / "t.png")


@pytest.mark.parametrize("method", ["vi", "pi", "mpi", "soft"])
def test_plan_command(method: str, tmp_path: Path, capsys) -> None:
    assert main(["plan", "gridworld", "--method", method, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "12 states, 4 actions" in out
    if method != "soft":  # soft values include the entropy bonus
        assert "0.645 E 0.744 E 0.848 E" in out  # the classic noise-0.2, gamma-0.9 solution
    assert (tmp_path / f"gridworld-{method}-values.png").exists()
    assert (tmp_path / f"gridworld-{method}-convergence.png").exists()


def test_plan_command_errors(capsys) -> None:
    assert main(["plan", "gridwold"]) == 2
    assert "Did you mean gridworld" in capsys.readouterr().err
    assert main(["plan", "gridworld", "--method", "lp"]) == 2
    assert "unknown planning method 'lp'" in capsys.readouterr().err
