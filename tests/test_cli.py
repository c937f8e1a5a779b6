"""The thorndike command: list, train, eval, plot, and its error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from thorndike.cli import main

SMALL = ["--n-envs", "2", "--n-steps", "16", "--minibatch-size", "32", "--n-epochs", "1", "--progress", "false",
         "--tensorboard", "false"]


def test_list(capsys) -> None:
    assert main(["list"]) == 0
    assert "ppo" in capsys.readouterr().out


def test_train_eval_plot(tmp_path: Path, capsys) -> None:
    code = main(["train", "ppo", "--env", "CartPole-v1", "--steps", "96", "--run-root", str(tmp_path),
                 "--lr", "1e-3", *SMALL])
    assert code == 0
    (run,) = tmp_path.iterdir()
    assert "lr: 0.001" in (run / "config.yaml").read_text()
    assert main(["eval", str(run), "--episodes", "3", "--video"]) == 0
    out = capsys.readouterr().out
    assert "over 3 episodes" in out
    gif = run / "videos" / "eval.gif"
    assert gif.stat().st_size > 1000 and gif.read_bytes()[:3] == b"GIF"
    assert main(["plot", str(run), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "ppoo", "--env", "CartPole-v1"], "unknown algorithm 'ppoo'"),
        (["train", "ppo", "--env", "CartPol-v1"], "Did you mean 'CartPole-v1'"),
        (["train", "ppo", "--env", "CartPole-v1", "--learning-rate", "1"], "unknown config field 'learning_rate'"),
        (["train", "ppo", "--env", "CartPole-v1", "--clip", "-1"], "clip must be > 0"),
        (["train", "--resume", "/nonexistent/run"], "not a run folder"),
        (["eval", "/nonexistent/final.pt"], "does not exist"),
    ],
)
def test_errors_exit_2_with_a_clear_message(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err
