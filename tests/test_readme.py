"""The README's Python snippets run as written (at a smaller budget), and what its commands print is what a user
is told."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
SMALLER = {"100_000": "2_048", "60_000": "2_000", "learn_episodes(500)": "learn_episodes(5)"}


@pytest.mark.parametrize("block", range(2))
def test_the_python_snippets_run(block: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)[block]
    for big, small in SMALLER.items():
        code = code.replace(big, small)
    monkeypatch.chdir(tmp_path)  # runs/, ppo.pt and the pictures land here
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})  # noqa: S102  (our own README)


def test_help_lists_every_command_without_markup(capsys: pytest.CaptureFixture[str]) -> None:
    from thorndike.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "plan" in text and "``" not in text


def test_help_fields_shows_the_tuned_values_the_run_will_use(capsys: pytest.CaptureFixture[str]) -> None:
    from thorndike.cli import main
    from thorndike.registry import tuned_config

    tuned = tuned_config("ppo", "CartPole-v1")
    assert main(["train", "ppo", "--env", "CartPole-v1", "--help-fields"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"tuned for CartPole-v1: {tuned['n_envs']}; default 8" in text


def test_an_evaluation_cut_at_the_step_cap_says_so(tmp_path: Path) -> None:
    import thorndike as th

    agent = th.make("q_learning", env="CliffWalking-v1", n_runs=2, run_root=str(tmp_path), progress=False)
    result = agent.evaluate(episodes=2, max_episode_steps=30)  # untrained greedy policies bump into a wall
    assert result.cut == 2 and "2 of them did not end within 30 steps" in str(result)
