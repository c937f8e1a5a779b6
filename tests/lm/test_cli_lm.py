"""The thorndike command for the LM trainers: train sft and grpo on a task (no env), evaluation printing held-out
exact-match accuracy, `sample RUN --prompt`, and the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from thorndike.cli import main

TINY = ["--task", "addition", "--task-size", "1", "--d-model", "16", "--n-layers", "1", "--n-heads", "2",
        "--eval-prompts", "8", "--log-every", "5", "--progress", "false", "--tensorboard", "false"]


def test_train_sft_then_grpo_from_it_then_eval_and_sample(tmp_path: Path, capsys) -> None:
    assert main(["train", "sft", "--steps", "20", "--batch-size", "16", "--run-root", str(tmp_path / "sft"),
                 *TINY]) == 0
    out = capsys.readouterr().out
    (sft,) = (tmp_path / "sft").iterdir()
    assert f"run folder: {sft}" in out
    assert "held-out exact-match accuracy" in out and "(greedy, 8 test-split prompts of addition)" in out
    assert (sft / "curve.png").read_bytes()[:4] == b"\x89PNG"

    assert main(["train", "grpo", "--steps", "10", "--batch-size", "2", "--group-size", "4", "--init-from", str(sft),
                 "--run-root", str(tmp_path / "grpo"), "--pictures", "false", *TINY]) == 0
    (grpo,) = (tmp_path / "grpo").iterdir()
    config = (grpo / "config.yaml").read_text()
    assert f"init_from: {sft}" in config and "group_size: 4" in config
    capsys.readouterr()

    assert main(["eval", str(grpo)]) == 0
    assert "grpo on addition: held-out exact-match accuracy" in capsys.readouterr().out
    assert main(["sample", str(grpo), "--prompt", "1+2=", "3+4=", "--samples", "2", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("1+2=") and ("(correct)" in lines[0] or "the answer is 3" in lines[0])
    assert [line.startswith("  sample: 1+2=") for line in lines[1:3]] == [True, True]
    assert lines[3].startswith("3+4=")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "grpo", "--task", "additon"], "task='additon'; task must be one of ['addition'"),
        (["train", "grpo", "--env", "CartPole-v1"], "grpo learns from a task's prompts, not from an env"),
        (["train", "grpo", "--group-size", "1"], "group_size must be >= 2"),
        (["train", "sft", "--init-from", "/nonexistent/run"], "init_from='/nonexistent/run' does not exist"),
        (["train", "ppo"], "train ppo needs --env"),
    ],
)
def test_lm_errors_exit_2_naming_the_field(argv: list[str], message: str, capsys) -> None:
    assert main([*argv, "--progress", "false"]) == 2
    assert message in capsys.readouterr().err


def test_sample_refuses_a_run_that_is_not_a_language_model(tmp_path: Path, capsys) -> None:
    assert main(["train", "q_learning", "--env", "FrozenLake-v1", "--steps", "100", "--run-root", str(tmp_path),
                 "--progress", "false", "--tensorboard", "false", "--pictures", "false"]) == 0
    (run,) = tmp_path.iterdir()
    assert main(["sample", str(run), "--prompt", "1+2="]) == 2
    assert "not a language model's" in capsys.readouterr().err
