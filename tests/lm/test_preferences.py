"""The hidden rule, the preference pairs and the win rate (thorndike.lm.preferences)."""

import math
import random

import pytest

from thorndike.config import ConfigError
from thorndike.lm.preferences import (
    HiddenRule,
    heldout_pairs,
    pairs_from_completions,
    perturbed_answers,
    preference_pairs,
    win_rate,
)
from thorndike.lm.tasks import addition, sorting, split_of


def test_hidden_rule_hand_values():
    rule = HiddenRule(addition(3))  # 123+456 = 579, D = 3, floor = -4
    assert rule("123+456=", "579") == 0.0
    assert rule("123+456=", "578") == pytest.approx(-math.log10(2))
    assert rule("123+456=", "679") == pytest.approx(-math.log10(101))
    assert rule("123+456=", "579==") == pytest.approx(-1.0)  # right number, two extra characters at 0.5 each
    assert rule("123+456=", "5790") == pytest.approx(-math.log10(1 + 5790 - 579) - 0.5)
    assert rule("123+456=", "") == -4.0  # no leading digit: the floor
    assert rule("123+456=", "=579") == -4.0 - 0.5
    assert rule("123+456=", "9" * 30) == pytest.approx(-4.0 - 0.5 * 27)  # closeness capped at the floor
    assert rule("123+456=", "579\njunk") == 0.0  # the answer ends at the first newline
    assert HiddenRule(addition(3), length_penalty=0.0)("123+456=", "579==") == 0.0


def test_hidden_rule_refuses_tasks_without_numeric_answers():
    with pytest.raises(ConfigError, match="task"):
        HiddenRule(sorting(length=3, symbols="abc"))
    with pytest.raises(ConfigError, match="length_penalty"):
        HiddenRule(addition(2), length_penalty=-1.0)


def test_perturbed_answers_cover_every_kind():
    out = perturbed_answers("579", random.Random(0), 300)
    assert "579" in out
    assert any(o in out for o in ("578", "580", "577", "581"))
    assert any(o.startswith("579") and set(o[3:]) <= set("+=") and len(o) > 3 for o in out)
    assert "57" in out
    assert any(len(o) == 4 and o[:3] == "579" and o[3].isdigit() for o in out)
    assert all(o == "579" or o for o in out)


def test_pairs_are_labelled_by_the_rule_and_split():
    task = addition(3)
    rule = HiddenRule(task)
    pairs = preference_pairs(task, rule, 200, random.Random(1))
    assert len(pairs) == 200
    assert all(rule(p.prompt, p.chosen) > rule(p.prompt, p.rejected) for p in pairs)
    assert all(split_of(p.prompt) == "train" for p in pairs)
    held = heldout_pairs(task, rule, 50, seed=3)
    assert len(held) == 50 and len({p.prompt for p in held}) == 50
    assert all(split_of(p.prompt) == "test" for p in held)
    assert all(rule(p.prompt, p.chosen) > rule(p.prompt, p.rejected) for p in held)
    assert held == heldout_pairs(task, rule, 50, seed=3)
    assert preference_pairs(task, rule, 20, random.Random(1)) == pairs[:20]


def test_pairs_from_completions_drop_ties():
    rule = HiddenRule(addition(3))
    assert pairs_from_completions("1+1=", ["2", "2", "2"], rule, random.Random(0)) == []
    (pair,) = pairs_from_completions("1+1=", ["2", "3"], rule, random.Random(0))
    assert (pair.chosen, pair.rejected) == ("2", "3")


def test_win_rate_counts_ties_as_half():
    rule = HiddenRule(addition(3))
    prompts = ["1+1=", "2+2=", "3+3=", "4+4="]
    assert win_rate(["2", "5", "6", "8"], ["2", "4", "7", "9"], rule, prompts) == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    assert win_rate(["2", "4"], ["2", "4"], rule, prompts[:2]) == 0.5
