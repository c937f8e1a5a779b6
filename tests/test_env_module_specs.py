"""``--env module:function`` from the current folder (the thorndike command puts it on sys.path, as ``python -m``
does), and errors that name the module that could not be imported instead of blaming an object or a function."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import thorndike as th
from thorndike.cli import main
from thorndike.envs import EnvImportError

MODULE = "thorndike_test_cwd_env"
SOURCE = """
import gymnasium as gym

def make_env():
    return gym.make("CartPole-v1")
"""
QUIET = ["--progress", "false", "--tensorboard", "false", "--pictures", "false"]
SMALL_PPO = ["--n-envs", "2", "--n-steps", "16", "--minibatch-size", "32", "--n-epochs", "1", *QUIET]


@pytest.fixture
def console_script_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """sys.path as a console script has it: without the current folder ('' is how `python -m pytest` adds it)."""
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    yield
    for name in [m for m in sys.modules if m.startswith("thorndike_test_")]:
        del sys.modules[name]


def test_the_command_imports_an_env_module_from_the_current_folder(tmp_path: Path, console_script_path: None,
                                                                   monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    (tmp_path / f"{MODULE}.py").write_text(SOURCE)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "ppo", "--env", f"{MODULE}:make_env", "--steps", "64", "--run-root", "runs",
                 *SMALL_PPO]) == 0, capsys.readouterr().err
    (run,) = (tmp_path / "runs").iterdir()
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    assert "over 2 episodes" in capsys.readouterr().out


def test_eval_elsewhere_names_the_module_it_could_not_import(tmp_path: Path, console_script_path: None,
                                                              monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / f"{MODULE}.py").write_text(SOURCE)
    monkeypatch.chdir(tmp_path / "project")
    assert main(["train", "ppo", "--env", f"{MODULE}:make_env", "--steps", "64", "--run-root", "../runs",
                 *SMALL_PPO]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    # a later session, started in another folder: the module is neither imported nor on sys.path
    del sys.modules[MODULE]
    sys.path.remove(str(tmp_path / "project"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"module '{MODULE}' could not be imported" in err
    assert str(tmp_path / "elsewhere") in err and "PYTHONPATH" in err
    assert "object or a function" not in err


def test_import_errors_say_which_part_is_missing(tmp_path: Path, console_script_path: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "thorndike_test_no_attr.py").write_text(SOURCE)
    (tmp_path / "thorndike_test_broken.py").write_text("import thorndike_test_missing_dependency\n")
    with pytest.raises(EnvImportError, match="module 'thorndike_test_absent.sub' could not be imported .*PYTHONPATH"):
        th.envs.make("thorndike_test_absent.sub:make_env")
    with pytest.raises(EnvImportError, match="'thorndike_test_no_attr' .* has no attribute 'make_it'"):
        th.envs.make("thorndike_test_no_attr:make_it")
    # the module is found; what it imports is not: the error says so, not that the module is missing
    with pytest.raises(EnvImportError, match="importing module 'thorndike_test_broken' failed: No module named "
                                             "'thorndike_test_missing_dependency'"):
        th.envs.make("thorndike_test_broken:make_env")
