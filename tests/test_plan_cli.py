"""``thorndike plan``: the soft temperature shown and explained, what policy iteration reports once stable,
Gymnasium ids with a tabular model, and user-facing text that cites course topics, not files outside the package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import thorndike
import thorndike as th
from thorndike.cli import _field_parser, build_parser, main
from thorndike.registry import ALGORITHMS, algorithms, get_algorithm


def plan(capsys, tmp_path: Path, *argv: str) -> str:
    assert main(["plan", *argv, "--out", str(tmp_path)]) == 0
    return capsys.readouterr().out


def test_soft_prints_its_temperature_and_why_arrows_can_leave_the_exit(tmp_path: Path, capsys) -> None:
    out = plan(capsys, tmp_path, "gridworld", "--method", "soft", "--temperature", "0.5")
    assert "soft value iteration (temperature 0.5)" in out
    # the entropy a step can earn, 0.5 ln 4, and over the horizon at gamma 0.9, 0.5 ln 4 / 0.1
    assert "= 0.693 of entropy, up to 6.931 over an infinite horizon" in out and "lead away" in out
    mdp = th.envs.gridworld.classic(noise=0.2, gamma=0.9)
    soft = th.planning.soft_value_iteration(mdp, 0.9, temperature=0.5)
    assert f"{float(soft.V[mdp.grid.state(1, 1)]):.3f}" in out  # solved at the temperature given
    differ = int((soft.policy != th.planning.value_iteration(mdp, 0.9).policy)[~mdp.terminal].sum())
    assert f"in {differ} of {int((~mdp.terminal).sum())} states" in out


def bellman_residual(out: str) -> float:
    return float(re.search(r"Bellman residual of the result: .* = (\S+)", out).group(1))


def test_policy_iteration_reports_a_stable_policy_and_an_exact_fixed_point(tmp_path: Path, capsys) -> None:
    out = plan(capsys, tmp_path, "gridworld", "--method", "pi")
    assert "policy iteration: policy stable after 2 improvements (3 exact policy evaluations)" in out
    assert "last" not in out.splitlines()[0]  # no value change between policies passed off as a residual
    assert bellman_residual(out) < 1e-12
    assert 1e-13 < bellman_residual(plan(capsys, tmp_path, "gridworld", "--method", "vi")) < 1e-9  # stopped at tol


def test_gymnasium_ids_with_a_tabular_model_are_planned(tmp_path: Path, capsys) -> None:
    out = plan(capsys, tmp_path, "FrozenLake-v1", "--env-kwargs", "is_slippery=false", "--gamma", "0.9")
    # the shortest path is 6 moves and the reward comes on the 6th: V(start) = 0.9^5
    assert re.search(r"^y=4 +0\.590 ", out, re.MULTILINE), out
    slippery = th.envs.tabular_model("FrozenLake-v1")
    V = th.planning.value_iteration(slippery, 0.9).V
    assert f"{float(V[0]):.3f}" in plan(capsys, tmp_path, "FrozenLake-v1", "--gamma", "0.9")


@pytest.mark.parametrize(("argv", "message"), [
    (["CartPole-v1"], "CartPole-v1 has no tabular model in thorndike"),
    (["Taxi-v4", "--env-kwargs", "fickle_passenger=true"], "cannot honour 'fickle_passenger'"),
    (["FrozenLak-v1"], "Did you mean FrozenLake-v1"),
    (["gridworld", "--env-kwargs", "is_slippery=false"], "'gridworld' takes --gamma, --noise and --living-reward"),
])
def test_problems_without_a_model_are_refused_by_name(argv: list[str], message: str, capsys) -> None:
    assert main(["plan", *argv]) == 2
    assert message in capsys.readouterr().err


# A citation of a file that ships outside the package: the course notes' files (000 ... 004, "F0 L81"), their
# inventory, the design notes.
FILE_CITATION = re.compile(r"INVENTORY|[Ii]nventory [A-E]\d|DESIGN\.md|shared/|(?<![.\d])00[0-4]\b|\bF\d L\d+")


def user_facing_strings() -> list[tuple[str, str]]:
    """Every string literal of the package that is not a docstring (messages, help, output), and the first line of
    each class docstring (``thorndike list`` shows the algorithms')."""
    found = []
    for path in Path(thorndike.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body \
                    and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
                docstrings.add(id(node.body[0].value))
                if isinstance(node, ast.ClassDef):
                    found.append((f"{path.name}:{node.lineno}", node.body[0].value.value.strip().splitlines()[0]))
        found += [(f"{path.name}:{node.lineno}", node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]
    return found


def test_user_facing_text_cites_no_file_outside_the_package(capsys) -> None:
    strings = user_facing_strings()
    assert len(strings) > 500  # the scan reads the package
    assert [(where, text) for where, text in strings if FILE_CITATION.search(text)] == []
    parser = build_parser()
    helps = [parser.format_help(), *(p.format_help() for p in parser._subparsers._group_actions[0].choices.values())]
    helps += [_field_parser(get_algorithm(name)).format_help() for name in ALGORITHMS]
    helps += [doc for _, _, doc in algorithms()]
    assert [h for h in helps if FILE_CITATION.search(h)] == []
    assert FILE_CITATION.search("biased off-policy (INVENTORY E21)") and FILE_CITATION.search("000 L402")
    assert not FILE_CITATION.search("default: 0.001")


def test_soft_temperature_changes_the_solution(tmp_path: Path, capsys) -> None:
    cold, warm = (plan(capsys, tmp_path, "gridworld", "--method", "soft", "--temperature", t) for t in ("0.01", "1"))
    assert "in 0 of 11 states" in cold and "in 0 of 11 states" not in warm
