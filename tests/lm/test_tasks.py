import random

import pytest
import torch

from thorndike.config import ConfigError
from thorndike.lm.tasks import (
    TASKS,
    Addition,
    Example,
    Parentheses,
    Sorting,
    WordProblems,
    aligned_credit,
    extract_answer,
    make_task,
    split_of,
)

ALL_TASKS = [make_task(name) for name in sorted(TASKS)]


def ids(task):
    return task.name


# ---------------------------------------------------------------- verifiers on hand examples


@pytest.mark.parametrize(
    "task, prompt, right, wrong",
    [
        (Addition(), "123+456=", ["579", "579\n", " 579 ", "579\nmore text"], ["578", "5790", "57 9", "", "975"]),
        (Addition(), "999+1=", ["1000"], ["000", "100"]),
        (Addition(fixed_width=True), "007+180=", ["0187", "0187\n"], ["187", "00187", "0178"]),
        (Addition(fixed_width=True), "999+001=", ["1000"], ["0100", "100"]),
        (Sorting(), "sort:31524=", ["12345"], ["1234", "123456", "54321", "12354"]),
        (Sorting(), "sort:30030=", ["00033"], ["033", "00330"]),
        (Parentheses(), "(()())?", ["yes"], ["no", "ye", "yess"]),
        (Parentheses(), "(()?", ["no"], ["yes"]),
        (Parentheses(), "())(()?", ["no"], ["yes"]),
        (WordProblems(), "ann has 3 apples, gets 4. how many?", ["7"], ["6", "34", "07"]),
        (WordProblems(), "bob has 9 pens, eats 4. how many left?", ["5"], ["13"]),
        (WordProblems(), "eve has 2 coins and cam has 8. how many in all?", ["10"], ["1", "0"]),
        (WordProblems(), "gus had 6 eggs, lost 6. how many now?", ["0"], ["12"]),
    ],
)
def test_verifier_accepts_right_and_rejects_wrong(task, prompt, right, wrong):
    for completion in right:
        assert task.is_correct(prompt, completion), completion
        assert task.reward(prompt, completion) == 1.0
    for completion in wrong:
        assert not task.is_correct(prompt, completion), completion
        assert task.reward(prompt, completion) < 1.0


@pytest.mark.parametrize("task", ALL_TASKS, ids=ids)
def test_answer_refuses_a_prompt_of_another_task(task):
    with pytest.raises(ValueError, match="is not a prompt of this task"):
        task.answer("hello=")


def test_extract_answer_cuts_at_the_end_marker_and_strips():
    assert extract_answer("  42 \nrest") == "42"
    assert extract_answer("42") == "42"
    assert extract_answer("\n42") == ""


# ---------------------------------------------------------------- partial credit


@pytest.mark.parametrize(
    "completion, credit",
    [("579", 1.0), ("578", 2 / 3), ("79", 2 / 3), ("1579", 3 / 4), ("975", 1 / 3), ("", 0.0), ("x579", 3 / 4),
     ("579\n123", 1.0)],
)
def test_addition_partial_credit_is_right_aligned_over_the_longer_length(completion, credit):
    assert Addition().reward("123+456=", completion) == pytest.approx(credit)


@pytest.mark.parametrize(
    "completion, credit",
    [("12345", 1.0), ("12354", 3 / 5), ("1234", 4 / 5), ("123456", 5 / 6), ("2345", 0.0), ("54321", 1 / 5)],
)
def test_sorting_partial_credit_is_left_aligned_positions(completion, credit):
    assert Sorting().reward("sort:31524=", completion) == pytest.approx(credit)


def test_parentheses_and_word_problems_credit():
    assert Parentheses().reward("(()?", "nope") == 0.0  # no partial credit
    # Word problems score numbers like addition: "12" for "13" keeps the tens digit.
    assert WordProblems().reward("ann has 9 apples, gets 4. how many?", "12") == pytest.approx(1 / 2)


def test_aligned_credit_is_one_exactly_on_equality():
    rng = random.Random(0)
    for _ in range(500):
        answer = "".join(rng.choice("0123") for _ in range(rng.randint(1, 4)))
        predicted = "".join(rng.choice("0123") for _ in range(rng.randint(0, 5)))
        for from_right in (False, True):
            credit = aligned_credit(answer, predicted, from_right)
            assert 0.0 <= credit <= 1.0
            assert (credit == 1.0) == (predicted == answer)


# ---------------------------------------------------------------- splits, sampling, reproducibility


@pytest.mark.parametrize("task", ALL_TASKS, ids=ids)
def test_splits_are_disjoint_over_many_samples(task):
    generator = torch.Generator().manual_seed(0)
    train = task.sample_prompts(5000, generator, "train")
    test = task.sample_prompts(5000, generator, "test")
    assert len(train) == len(test) == 5000
    assert {e.prompt for e in train}.isdisjoint({e.prompt for e in test})
    assert all(split_of(e.prompt) == "train" for e in train)
    assert all(split_of(e.prompt) == "test" for e in test)


def test_about_a_tenth_of_prompts_are_held_out():
    everything = [f"{a}+{b}=" for a in range(100) for b in range(100)]  # every prompt of Addition(digits=2)
    share = sum(split_of(p) == "test" for p in everything) / len(everything)
    assert 0.08 < share < 0.12


@pytest.mark.parametrize("task", ALL_TASKS, ids=ids)
def test_samples_are_valid_well_formed_and_demonstrations_verify(task):
    examples = task.sample_prompts(2000, torch.Generator().manual_seed(1), "train")
    examples += task.sample_prompts(500, torch.Generator().manual_seed(1), "test")
    alphabet = set(task.alphabet)
    for example in examples:
        assert set(example.prompt + example.answer) <= alphabet
        assert len(example.prompt) <= task.max_prompt_len
        assert 1 <= len(example.answer) <= task.max_answer_len
        assert task.answer(example.prompt) == example.answer
        demonstration = task.demonstration(example)
        assert task.is_correct(example.prompt, demonstration)
        assert task.reward(example.prompt, demonstration) == 1.0
    # The bounds are reached, not just respected: they size the model's context and generation budget.
    assert max(len(e.prompt) for e in examples) == task.max_prompt_len or isinstance(task, WordProblems)
    assert max(len(e.answer) for e in examples) == task.max_answer_len


@pytest.mark.parametrize("task", ALL_TASKS, ids=ids)
def test_sampling_is_reproducible(task):
    def draw(seed):
        generator = torch.Generator().manual_seed(seed)
        return task.sample_prompts(50, generator), task.sample_prompts(50, generator)

    first, second = draw(0)
    assert draw(0) == (first, second)
    assert first != second  # the generator moves on between calls
    assert draw(1)[0] != first
    assert task.sample_prompts(50, random.Random(3)) == task.sample_prompts(50, random.Random(3))


@pytest.mark.parametrize("task", ALL_TASKS, ids=ids)
def test_heldout_set_is_fixed_distinct_and_held_out(task):
    n = 30 if isinstance(task, Parentheses) else 200  # 41 test prompts at max_len=8
    heldout = task.heldout_set(n, seed=0)
    assert heldout == task.heldout_set(n, seed=0)
    assert len({e.prompt for e in heldout}) == n
    assert all(split_of(e.prompt) == "test" for e in heldout)
    assert heldout != task.heldout_set(n, seed=1)


def test_a_split_too_small_is_refused():
    # One-digit addition has 100 prompts, about ten of them held out.
    with pytest.raises(ValueError, match="distinct 'test' prompts"):
        Addition(digits=1).heldout_set(50)


def test_parentheses_are_half_balanced():
    examples = Parentheses(max_len=12).sample_prompts(4000, random.Random(0))
    share = sum(e.answer == "yes" for e in examples) / len(examples)
    assert 0.45 < share < 0.55


def test_sorting_with_letters():
    task = Sorting(length=4, symbols="dcba")
    assert task.answer("sort:dbca=") == "abcd"
    assert set("abcd") <= set(task.alphabet)
    assert all(e.answer == "".join(sorted(e.answer)) for e in task.sample_prompts(100, random.Random(0)))


# ---------------------------------------------------------------- construction and errors


def test_fixed_width_addition_draws_the_same_sums_zero_padded():
    plain, fixed = Addition(), make_task("addition_fixed_width")
    assert fixed.name == "addition_fixed_width" and fixed.max_prompt_len == plain.max_prompt_len == 8
    for seed in range(200):  # the same draws, only written differently
        a, b = plain.generate(random.Random(seed)), fixed.generate(random.Random(seed))
        assert len(b.prompt) == 8 and len(b.answer) == 4 and b.answer == fixed.answer(b.prompt)
        assert [int(x) for x in b.prompt[:-1].split("+")] == [int(x) for x in a.prompt[:-1].split("+")]
        assert int(b.answer) == int(a.answer)
    with pytest.raises(ValueError, match="is not a prompt of this task"):
        fixed.answer("7+180=")  # operands must have exactly `digits` digits
    assert fixed.reward("007+180=", "0188") == 0.75  # partial credit from the right, as for plain addition


def test_make_task_builds_and_refuses_typos():
    assert make_task("addition", digits=2) == Addition(digits=2)
    assert make_task("sorting", length=3).max_answer_len == 3
    with pytest.raises(ValueError, match="unknown task 'additon'. Did you mean addition, addition_fixed_width\\?.*"
                                         "Known tasks: addition, addition_fixed_width, parentheses, sorting, "
                                         "word_problems"):
        make_task("additon")
    with pytest.raises(ValueError, match="takes no argument digit; it takes: digits"):
        make_task("addition", digit=2)


@pytest.mark.parametrize(
    "build, field",
    [(lambda: Addition(digits=0), "digits"), (lambda: Sorting(length=0), "length"),
     (lambda: Sorting(symbols="aa"), "symbols"), (lambda: Sorting(symbols="1=2"), "symbols"),
     (lambda: Parentheses(max_len=1), "max_len"), (lambda: WordProblems(max_number=0), "max_number")],
)
def test_invalid_parameters_are_refused_by_name(build, field):
    with pytest.raises(ConfigError, match=f"{field}="):
        build()


def test_sample_prompts_checks_its_arguments():
    with pytest.raises(ConfigError, match="split='valid'"):
        Addition().sample_prompts(1, random.Random(0), "valid")
    with pytest.raises(TypeError, match="torch.Generator or a random.Random"):
        Addition().sample_prompts(1, 0)
    assert Addition().sample_prompts(0, random.Random(0)) == []
    assert isinstance(Addition().sample_prompts(1, random.Random(0))[0], Example)
