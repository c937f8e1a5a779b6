"""Tasks with verifiable rewards for RL on language models (issue #18): prompts generated in code, answers computed
from the prompt alone, rewards in [0, 1] from a program rather than a learned judge.

Lecture-notes concept: *RL with verifiable rewards* (003, the LLM lectures: SFT -> preference fine-tuning ->
RLVR/RLHF). The notes name no concrete task; these are the small ones a character-level model on two CPU cores can
learn: addition, sorting, balanced parentheses and one-line word problems.

The pieces every task has (:class:`Task`):

- ``sample_prompts(n, generator, split)`` -> ``n`` :class:`Example` (``prompt``, ``answer``), reproducible from a
  ``torch.Generator`` (one draw seeds a ``random.Random``, so the generator advances and the next call differs) or a
  seeded ``random.Random``.
- ``reward(prompt, completion)`` in [0, 1] (partial credit where the task defines one) and ``is_correct(prompt,
  completion)``, the exact match; both read the answer off the completion with :func:`extract_answer`.
- ``demonstration(example)``: the completion a supervised warm start trains on (the answer; the trainer appends the
  tokenizer's end-of-sequence token).
- Held-out prompts: :func:`split_of` puts a prompt in ``"test"`` when a stable hash of its text is 0 mod 10, else in
  ``"train"``; sampling for a split rejects the other split's prompts, so no test prompt is ever trained on.
  ``heldout_set(n, seed)`` is a fixed evaluation set of distinct test prompts.
- ``alphabet`` (every character a prompt or answer can use, for a character tokenizer), ``max_prompt_len`` and
  ``max_answer_len`` (to size the model's context and the generation budget).

:func:`make_task` builds one by name: ``addition``, ``addition_fixed_width``, ``sorting``, ``parentheses``,
``word_problems``.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import random
import re
import string
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch

from thorndike.config import check

__all__ = ["Example", "Task", "Addition", "Sorting", "Parentheses", "WordProblems", "addition",
           "addition_fixed_width", "sorting", "parentheses", "word_problems", "make_task", "TASKS", "split_of",
           "extract_answer", "aligned_credit", "END_MARKER", "SPLITS"]

SPLITS = ("train", "test")
# One prompt in TEST_BUCKETS is held out (hash bucket 0).
TEST_BUCKETS = 10
# A completion's answer ends at its first newline: the tokenizer's end-of-sequence token ends generation, but a model
# whose decoded text runs on (or a demonstration written as a line) still has a well-defined answer.
END_MARKER = "\n"


@dataclass(frozen=True)
class Example:
    """One prompt and its reference answer (the answer a completion must match exactly)."""

    prompt: str
    answer: str


def split_of(prompt: str) -> str:
    """``"test"`` when the stable hash of ``prompt`` is 0 mod 10, else ``"train"``.

    BLAKE2b of the UTF-8 text, not Python's ``hash`` (salted per process): the split is the same on every machine
    and in every run, and depends on the prompt alone, so two splits can never share a prompt.
    """
    digest = hashlib.blake2b(prompt.encode("utf-8"), digest_size=8).digest()
    return "test" if int.from_bytes(digest, "little") % TEST_BUCKETS == 0 else "train"


def extract_answer(completion: str) -> str:
    """The answer a completion gives: its text before the first :data:`END_MARKER`, stripped of whitespace."""
    return completion.split(END_MARKER, 1)[0].strip()


def aligned_credit(answer: str, predicted: str, from_right: bool) -> float:
    """Partial credit = (characters equal at aligned positions) / max(len(answer), len(predicted)).

    Positions are aligned from the left (``from_right=False``: the i-th character against the i-th) or from the
    right (the last against the last: the units digit of a number against the units digit). Dividing by the longer
    length is the length-mismatch penalty: every missing or extra character costs one position. The credit is 1
    exactly when ``predicted == answer``, and 0 for an empty prediction (the answers here are never empty).
    """
    if from_right:
        answer, predicted = answer[::-1], predicted[::-1]
    longest = max(len(answer), len(predicted))
    if longest == 0:
        return 1.0
    return sum(a == p for a, p in zip(answer, predicted)) / longest


def _rng(generator: torch.Generator | random.Random) -> random.Random:
    """A ``random.Random`` for one call: the given one, or one seeded by a single draw from a torch generator (on
    whatever device it lives), so the torch generator's state decides the prompts and moves on after the call."""
    if isinstance(generator, random.Random):
        return generator
    if isinstance(generator, torch.Generator):
        seed = torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)
        return random.Random(int(seed.item()))
    raise TypeError(f"sample_prompts: generator must be a torch.Generator or a random.Random, got "
                    f"{type(generator).__name__}")


def _number(rng: random.Random, digits: int) -> int:
    """A number of 1..``digits`` digits: the length uniform first, then the value uniform among numbers of that
    length, so short operands are as common as long ones (uniform values would make almost all of them long)."""
    length = rng.randint(1, digits)
    return rng.randint(0 if length == 1 else 10 ** (length - 1), 10**length - 1)


class Task(ABC):
    """The base of the tasks: each is a dataclass of its own parameters (validated in ``__post_init__``) that
    defines ``name``, ``alphabet``, ``max_prompt_len``, ``max_answer_len``, ``generate(rng)`` (one example of either
    split) and ``answer(prompt)`` (the reference answer, computed from the prompt alone; a ``ValueError`` for a
    prompt the task cannot have made), and overrides ``reward`` where it gives partial credit."""

    name: str
    alphabet: str
    max_prompt_len: int
    max_answer_len: int
    # How many draws sample_prompts may make per prompt asked for before it decides the split is (nearly) empty.
    max_draws_per_prompt = 1000

    @abstractmethod
    def generate(self, rng: random.Random) -> Example:
        """One example of either split, drawn with ``rng``."""

    @abstractmethod
    def answer(self, prompt: str) -> str:
        """The reference answer of ``prompt``, computed from the prompt alone."""

    def sample_prompts(self, n: int, generator: torch.Generator | random.Random, split: str = "train"
                       ) -> list[Example]:
        """``n`` examples from ``split`` (``"train"`` or ``"test"``), drawn with replacement: draws whose prompt
        falls in the other split are rejected (:func:`split_of`)."""
        check(split in SPLITS, "split", split, f"one of {list(SPLITS)}")
        return self._draw(n, _rng(generator), split, distinct=False)

    def heldout_set(self, n: int, seed: int = 0) -> list[Example]:
        """A fixed evaluation set: ``n`` distinct test-split examples, the same for the same ``seed`` on every
        machine (they depend on ``seed`` only, not on any generator the caller holds)."""
        return self._draw(n, random.Random(seed), "test", distinct=True)

    def _draw(self, n: int, rng: random.Random, split: str, distinct: bool) -> list[Example]:
        """Draw until ``n`` examples of ``split`` (each prompt once if ``distinct``) or ``max_draws_per_prompt``
        draws per example asked for, then refuse: a split that small would otherwise loop for ever."""
        check(n >= 0, "n", n, "a count >= 0")
        examples: dict[str, Example] | list[Example] = {} if distinct else []
        budget = self.max_draws_per_prompt * max(n, 1)
        for _ in range(budget):
            if len(examples) == n:
                break
            example = self.generate(rng)
            if split_of(example.prompt) != split:
                continue
            if distinct:
                examples.setdefault(example.prompt, example)
            else:
                examples.append(example)
        if len(examples) < n:
            what = f"distinct '{split}' prompts" if distinct else f"'{split}' prompts"
            raise ValueError(f"{self.name}: found only {len(examples)} of {n} {what} in {budget} draws; the "
                             f"task's prompt space is too small for this (ask for fewer or make the task larger)")
        return list(examples.values()) if distinct else examples

    def is_correct(self, prompt: str, completion: str) -> bool:
        """Exact match: the completion's answer (:func:`extract_answer`) equals the reference answer."""
        return extract_answer(completion) == self.answer(prompt)

    def reward(self, prompt: str, completion: str) -> float:
        """1.0 for a correct completion, else 0.0 (tasks with partial credit override this)."""
        return 1.0 if self.is_correct(prompt, completion) else 0.0

    def demonstration(self, example: Example) -> str:
        """The completion a supervised warm start imitates: the answer itself (the trainer appends the tokenizer's
        end-of-sequence token), so ``is_correct(example.prompt, demonstration(example))`` holds."""
        return example.answer

    def _parse(self, pattern: re.Pattern[str], prompt: str) -> re.Match[str]:
        match = pattern.fullmatch(prompt)
        if match is None:
            raise ValueError(f"{self.name}: {prompt!r} is not a prompt of this task")
        return match


@dataclass
class Addition(Task):
    """``"123+456="`` -> ``"579"``: two operands of 1..``digits`` digits each (length uniform, then value).

    Partial credit: :func:`aligned_credit` aligned from the right, the digit-by-digit credit a schoolbook sum earns:
    for the answer ``"579"``, ``"579"`` -> 1, ``"578"`` -> 2/3, ``"79"`` -> 2/3 (one digit missing), ``"1579"`` -> 3/4
    (one digit extra), ``"975"`` -> 1/3, ``""`` -> 0.

    ``fixed_width`` (the task ``addition_fixed_width``) writes the same sums with the operands zero-padded to
    ``digits`` and the answer to ``digits + 1`` characters: ``"007+180="`` -> ``"0187"``. The numbers are drawn alike;
    only the format differs: every digit then sits at the same position in every prompt, so a model need not learn to
    align digits of operands of different lengths (with variable widths, most of a small model's errors are
    misalignments such as ``"764+4="`` -> ``"751"``, not carries).
    """

    digits: int = 3
    fixed_width: bool = False
    name = "addition"
    alphabet = "0123456789+="

    def __post_init__(self) -> None:
        check(1 <= self.digits <= 18, "digits", self.digits, "between 1 and 18")
        if self.fixed_width:
            self.name = "addition_fixed_width"
        self.max_prompt_len = 2 * self.digits + 2
        self.max_answer_len = self.digits + 1
        width = f"{self.digits}" if self.fixed_width else f"1,{self.digits}"
        self._pattern = re.compile(rf"(\d{{{width}}})\+(\d{{{width}}})=")

    def generate(self, rng: random.Random) -> Example:
        a, b = _number(rng, self.digits), _number(rng, self.digits)
        if self.fixed_width:
            return Example(f"{a:0{self.digits}d}+{b:0{self.digits}d}=", str(a + b).zfill(self.digits + 1))
        return Example(f"{a}+{b}=", str(a + b))

    def answer(self, prompt: str) -> str:
        a, b = self._parse(self._pattern, prompt).groups()
        total = str(int(a) + int(b))
        return total.zfill(self.digits + 1) if self.fixed_width else total

    def reward(self, prompt: str, completion: str) -> float:
        return aligned_credit(self.answer(prompt), extract_answer(completion), from_right=True)


@dataclass
class Sorting(Task):
    """``"sort:31524="`` -> ``"12345"``: ``length`` symbols drawn uniformly, with replacement, from ``symbols``
    (default the ten digits); the answer is them in ascending character order.

    Partial credit: :func:`aligned_credit` aligned from the left, the fraction of positions right: for the answer
    ``"12345"``, ``"12354"`` -> 3/5, ``"1234"`` -> 4/5 (one missing), ``"123456"`` -> 5/6 (one extra).
    """

    length: int = 5
    symbols: str = "0123456789"
    name = "sorting"
    prefix = "sort:"

    def __post_init__(self) -> None:
        length, symbols = self.length, self.symbols
        check(1 <= length <= 32, "length", length, "between 1 and 32")
        check(len(symbols) >= 2 and len(set(symbols)) == len(symbols), "symbols", symbols,
              "two or more distinct characters")
        check(all(c.isascii() and c.isalnum() for c in symbols), "symbols", symbols,
              "ASCII letters or digits (no ':', '=' or spaces)")
        self.alphabet = "".join(sorted(set(symbols) | set(self.prefix + "=")))
        self.max_prompt_len = len(self.prefix) + length + 1
        self.max_answer_len = length
        self._pattern = re.compile(rf"{re.escape(self.prefix)}([{symbols}]{{{length}}})=")

    def generate(self, rng: random.Random) -> Example:
        items = "".join(rng.choice(self.symbols) for _ in range(self.length))
        return Example(f"{self.prefix}{items}=", "".join(sorted(items)))

    def answer(self, prompt: str) -> str:
        return "".join(sorted(self._parse(self._pattern, prompt).group(1)))

    def reward(self, prompt: str, completion: str) -> float:
        return aligned_credit(self.answer(prompt), extract_answer(completion), from_right=False)


def _balanced(text: str) -> bool:
    depth = 0
    for c in text:
        depth += 1 if c == "(" else -1
        if depth < 0:
            return False
    return depth == 0


@dataclass
class Parentheses(Task):
    """``"(()())?"`` -> ``"yes"`` (balanced) or ``"no"``: strings of 1..``max_len`` parentheses, half of them
    balanced (a uniformly random balanced string of a uniformly chosen even length), half unbalanced (a uniform
    string of a uniform length, redrawn while balanced), so always answering one way earns 1/2. No partial credit.

    The prompt space is small (510 strings at ``max_len=8``, 22 of them balanced), so its test split is too: about
    a tenth of each, a held-out set mostly of unbalanced strings. A held-out accuracy that means something needs a
    larger ``max_len`` (12 or more).
    """

    max_len: int = 8
    name = "parentheses"
    alphabet = "()?enosy"
    max_answer_len = 3

    def __post_init__(self) -> None:
        check(2 <= self.max_len <= 40, "max_len", self.max_len, "between 2 and 40")
        self.max_prompt_len = self.max_len + 1
        self._pattern = re.compile(rf"([()]{{1,{self.max_len}}})\?")

    def generate(self, rng: random.Random) -> Example:
        if rng.random() < 0.5:
            pairs = rng.randint(1, self.max_len // 2)
            # A shuffle of n '(' and n ')' is balanced with probability 1/(n+1): redrawing until it is gives each
            # balanced string the same probability.
            while True:
                chars = list("(" * pairs + ")" * pairs)
                rng.shuffle(chars)
                if _balanced(chars):
                    break
        else:
            while True:
                chars = [rng.choice("()") for _ in range(rng.randint(1, self.max_len))]
                if not _balanced(chars):
                    break
        text = "".join(chars)
        return Example(f"{text}?", "yes" if _balanced(text) else "no")

    def answer(self, prompt: str) -> str:
        return "yes" if _balanced(self._parse(self._pattern, prompt).group(1)) else "no"


# (template, operation): {name}, {name2} a person, {a}, {b} the numbers, {item} a plural noun. Subtractions draw
# b <= a, so every answer is a whole number >= 0.
WORD_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("{name} has {a} {item}, gets {b}. how many?", "+"),
    ("{name} has {a} {item}, {name2} gives {b} more. how many?", "+"),
    ("{name} has {a} {item} and {name2} has {b}. how many in all?", "+"),
    ("{name} has {a} {item}, eats {b}. how many left?", "-"),
    ("{name} had {a} {item}, lost {b}. how many now?", "-"),
    ("{name} has {a} {item}, gives {b} to {name2}. how many left?", "-"),
)
WORD_NAMES = ("ann", "bob", "cam", "dan", "eve", "fay", "gus", "hal")
WORD_ITEMS = ("apples", "pens", "cards", "coins", "eggs", "books")


@dataclass
class WordProblems(Task):
    """One-line word problems from a small grammar: ``"ann has 3 apples, gets 4. how many?"`` -> ``"7"``.

    Six templates (three add, three subtract), eight names, six items, numbers 0..``max_number`` (for a subtraction
    the second at most the first). The answer is the number; partial credit as for :class:`Addition` (digits
    aligned from the right, divided by the longer length).
    """

    max_number: int = 9
    name = "word_problems"

    def __post_init__(self) -> None:
        max_number = self.max_number
        check(1 <= max_number <= 999, "max_number", max_number, "between 1 and 999")
        texts = [t for t, _ in WORD_TEMPLATES] + list(WORD_NAMES) + list(WORD_ITEMS)
        fixed = set("".join(re.sub(r"\{\w+\}", "", t) for t in texts))
        self.alphabet = "".join(sorted(fixed | set(string.digits)))
        width = len(str(max_number))
        self.max_prompt_len = max(len(t.format(name=max(WORD_NAMES, key=len), name2=max(WORD_NAMES, key=len),
                                               item=max(WORD_ITEMS, key=len), a="9" * width, b="9" * width))
                                  for t, _ in WORD_TEMPLATES)
        self.max_answer_len = len(str(2 * max_number))
        names, items = "|".join(WORD_NAMES), "|".join(WORD_ITEMS)
        self._patterns = []
        for template, operation in WORD_TEMPLATES:
            pattern = re.escape(template)
            for key, group in (("name", f"(?:{names})"), ("name2", f"(?:{names})"), ("item", f"(?:{items})"),
                               ("a", r"(?P<a>\d+)"), ("b", r"(?P<b>\d+)")):
                pattern = pattern.replace(re.escape("{" + key + "}"), group)
            self._patterns.append((re.compile(pattern), operation))

    def generate(self, rng: random.Random) -> Example:
        template, operation = rng.choice(WORD_TEMPLATES)
        name, name2 = rng.sample(WORD_NAMES, 2)
        a = rng.randint(0, self.max_number)
        b = rng.randint(0, self.max_number if operation == "+" else a)
        prompt = template.format(name=name, name2=name2, item=rng.choice(WORD_ITEMS), a=a, b=b)
        return Example(prompt, str(a + b if operation == "+" else a - b))

    def answer(self, prompt: str) -> str:
        for pattern, operation in self._patterns:
            match = pattern.fullmatch(prompt)
            if match is not None:
                a, b = int(match["a"]), int(match["b"])
                return str(a + b if operation == "+" else a - b)
        raise ValueError(f"{self.name}: {prompt!r} is not a prompt of this task")

    def reward(self, prompt: str, completion: str) -> float:
        return aligned_credit(self.answer(prompt), extract_answer(completion), from_right=True)


def addition(digits: int = 3) -> Addition:
    """:class:`Addition` with operands of up to ``digits`` digits."""
    return Addition(digits)


def addition_fixed_width(digits: int = 3) -> Addition:
    """:class:`Addition` with operands zero-padded to ``digits`` and the answer to ``digits + 1`` characters."""
    return Addition(digits, fixed_width=True)


def sorting(length: int = 5, symbols: str = "0123456789") -> Sorting:
    """:class:`Sorting` of ``length`` symbols drawn from ``symbols``."""
    return Sorting(length, symbols)


def parentheses(max_len: int = 8) -> Parentheses:
    """:class:`Parentheses` on strings of up to ``max_len`` parentheses."""
    return Parentheses(max_len)


def word_problems(max_number: int = 9) -> WordProblems:
    """:class:`WordProblems` with numbers up to ``max_number``."""
    return WordProblems(max_number)


TASKS: dict[str, Callable[..., Task]] = {
    "addition": addition,
    "addition_fixed_width": addition_fixed_width,
    "sorting": sorting,
    "parentheses": parentheses,
    "word_problems": word_problems,
}


def make_task(name: str, **kwargs: object) -> Task:
    """The task called ``name`` built with ``kwargs``; an unknown name or keyword is refused with the known ones."""
    if name not in TASKS:
        close = difflib.get_close_matches(name, list(TASKS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown task '{name}'.{hint} Known tasks: {', '.join(sorted(TASKS))}")
    accepted = list(inspect.signature(TASKS[name]).parameters)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"task '{name}' takes no argument {', '.join(unknown)}; it takes: {', '.join(accepted)}")
    return TASKS[name](**kwargs)
