"""The package as installed: `thorndike --version`, the version read from one place, package data and py.typed
declared, extras that never pull another torch, and th.make typed for editors. (A real wheel build is too slow for
the suite: it is done by hand, see the report of issue #12.)"""

from __future__ import annotations

import ast
import re
import tomllib
import typing
from pathlib import Path

import pytest

import thorndike as th
from thorndike.agent import Agent
from thorndike.cli import main

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_version_flag(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"thorndike {th.__version__}"


def test_the_version_is_written_in_one_place_that_setuptools_reads_without_importing() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "thorndike.__version__"}
    # a plain string literal, so setuptools reads it from the source without importing torch
    tree = ast.parse((ROOT / "thorndike" / "__init__.py").read_text())
    (literal,) = [node.value.value for node in tree.body if isinstance(node, ast.Assign)
                  and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["__version__"]]
    assert literal == th.__version__ and re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|rc\d+)?", literal)


def test_package_data_and_py_typed_are_declared_and_present() -> None:
    data = PYPROJECT["tool"]["setuptools"]["package-data"]["thorndike"]
    assert "configs/*.yaml" in data and "py.typed" in data
    assert (ROOT / "thorndike" / "py.typed").is_file()
    assert len(list((ROOT / "thorndike" / "configs").glob("*.yaml"))) >= 3
    assert PYPROJECT["project"]["scripts"] == {"thorndike": "thorndike.cli:main"}


def test_extras_and_that_none_pulls_another_torch() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"dev", "bench", "atari", "mujoco", "box2d", "lm", "tune", "all"} <= set(extras)
    assert any(req.startswith("optuna") for req in extras["tune"])
    assert any(req.startswith("transformers") for req in extras["lm"])
    (everything,) = extras["all"]
    named = set(re.fullmatch(r"thorndike\[(.*)\]", everything).group(1).split(","))
    assert named == {"atari", "mujoco", "box2d", "lm", "tune", "bench"}
    for name, requirements in extras.items():  # torch is pinned by constraints.txt and required once, by the core
        assert not any(re.match(r"torch\b", req) for req in requirements), name
    assert [req for req in PYPROJECT["project"]["dependencies"] if re.match(r"torch\b", req)] == ["torch>=2.13"]


def test_make_load_and_resume_are_typed_as_agents() -> None:
    for function in (th.make, th.load, th.resume):
        assert typing.get_type_hints(function, localns={"Agent": Agent})["return"] is Agent
