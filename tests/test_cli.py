"""The thorndike command: list, train, eval, plot, and its error messages."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest
import torch

import thorndike as th
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
    mp4 = run / "videos" / "eval.mp4"  # MP4 by default
    assert f"video: {mp4}" in out and mp4.read_bytes()[4:8] == b"ftyp"
    import imageio.v2 as imageio

    with imageio.get_reader(mp4) as reader:
        assert reader.count_frames() > 1 and reader.get_data(0).shape == (400, 608, 3)
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


def test_eval_video_of_a_tabular_agent(tmp_path: Path) -> None:
    assert main(["train", "q_learning", "--env", "FrozenLake-v1", "--steps", "300", "--run-root", str(tmp_path),
                 "--progress", "false", "--tensorboard", "false", "--pictures", "false"]) == 0
    (run,) = tmp_path.iterdir()
    assert main(["eval", str(run), "--episodes", "2", "--video", "--video-format", "gif"]) == 0
    assert (run / "videos" / "eval.gif").read_bytes()[:3] == b"GIF"
    assert not (run / "videos" / "eval.mp4").exists()


def cartpole_without_render_mode() -> gym.Env:
    """A user's factory that takes no render_mode and builds an env that renders frames itself."""
    return gym.make("CartPole-v1", render_mode="rgb_array")


def cartpole_that_cannot_render() -> gym.Env:
    return gym.make("CartPole-v1")


def test_video_of_an_env_whose_factory_takes_no_render_mode(tmp_path: Path) -> None:
    from thorndike.envs.video import record_gif

    for factory in (cartpole_without_render_mode, cartpole_that_cannot_render):
        agent = th.make("ppo", env=factory, n_envs=2, n_steps=8, minibatch_size=16, run_root=str(tmp_path),
                        progress=False, tensorboard=False, pictures=False)
        if factory is cartpole_without_render_mode:
            assert record_gif(agent, tmp_path / "ok.gif", max_frames=20).stat().st_size > 0
        else:
            with pytest.raises(ValueError, match="does not render rgb_array frames"):
                record_gif(agent, tmp_path / "no.gif")


def progress_rows(run_dir: Path) -> list[dict[str, str]]:
    import csv

    with open(run_dir / "progress.csv", newline="") as f:
        return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in csv.DictReader(f)]


def test_resume_extends_a_finished_run_exactly_and_takes_display_options(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from thorndike.core.checkpoint import load_checkpoint

    quiet = ["--progress", "false", "--tensorboard", "false", "--pictures", "false"]
    common = ["train", "q_learning", "--env", "FrozenLake-v1", "--n-runs", "3", "--log-every", "50", *quiet]
    assert main([*common, "--steps", "400", "--run-root", str(tmp_path / "once")]) == 0
    assert main([*common, "--steps", "200", "--run-root", str(tmp_path / "twice")]) == 0
    (once,), (twice,) = (tmp_path / "once").iterdir(), (tmp_path / "twice").iterdir()
    assert main(["train", "--resume", str(twice), "--steps", "400", "--progress", "false"]) == 0
    assert "at step 200 of 400" in capsys.readouterr().out
    assert torch.equal(load_checkpoint(twice / "final.pt")["components"]["tables"]["tensors"]["q"],
                       load_checkpoint(once / "final.pt")["components"]["tables"]["tensors"]["q"])
    assert progress_rows(twice) == progress_rows(once)  # 8 rows, as if it had been one run of 400 steps

    assert main(["train", "--resume", str(twice), "--steps", "100"]) == 2
    assert "below the step the run is at (400)" in capsys.readouterr().err
    assert main(["train", "--resume", str(twice), "--lr", "0.5"]) == 2
    assert "--lr 0.5 cannot change" in capsys.readouterr().err


def test_resume_without_steps_of_a_run_that_ended_past_its_budget_is_a_no_op(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    quiet = ["--progress", "false", "--tensorboard", "false", "--pictures", "false"]
    # CEM stops at the first iteration boundary at or past the budget: 16 sessions of up to 20 steps overshoot 1000
    assert main(["train", "cem", "--env", "FrozenLake-v1", "--n-sessions", "16", "--max-episode-steps", "20",
                 "--steps", "1000", "--run-root", str(tmp_path), *quiet]) == 0
    (run,) = tmp_path.iterdir()
    finished = th.load(run).global_step
    assert finished > 1000
    rows = progress_rows(run)
    assert main(["train", "--resume", str(run), "--progress", "false"]) == 0
    assert f"at step {finished} of {finished}" in capsys.readouterr().out
    assert th.load(run).global_step == finished and progress_rows(run) == rows


def test_hidden_sizes_take_a_bracketed_list_from_the_shell(tmp_path: Path) -> None:
    assert main(["train", "ppo", "--env", "CartPole-v1", "--steps", "64", "--n-envs", "2", "--n-steps", "32",
                 "--minibatch-size", "32", "--hidden-sizes", "[16, 8]", "--run-root", str(tmp_path),
                 "--progress", "false", "--tensorboard", "false", "--pictures", "false"]) == 0
    (run,) = tmp_path.iterdir()
    assert th.load(run).config.hidden_sizes == (16, 8)


def test_a_non_finite_observation_is_one_paragraph_with_the_resume_hint(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "ppo", "--env", "tests.policy_gradient.test_ppo:NaNAfter", "--steps", "10000", "--n-envs", "2",
            "--n-steps", "64", "--minibatch-size", "64", "--checkpoint-every", "64", "--run-root", str(tmp_path),
            "--progress", "false", "--tensorboard", "false"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "observation is not finite" in err and "env copy 0" in err
    assert "the last checkpoint is" in err and "thorndike train --resume" in err and "RUN`" not in err
    with pytest.raises(th.NonFiniteError):  # --debug shows the traceback instead
        main([*args, "--debug"])
