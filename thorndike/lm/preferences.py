"""Preference data generated in code and labelled by a HIDDEN scoring rule, for the preference learners of RL for
language models (issue #18): the reward model learns the rule from pairs, DPO learns a policy from the same pairs, and
RLHF-PPO optimises the learned reward model's score. None of them ever calls the rule: they see it only through which
completion of a pair is ``chosen``. The benchmarks and the win rate call it, as the "human" who judges.

Lecture-notes concept: 003 lecture 8 (a reward model from human comparisons, then RLHF or DPO). The notes give the
headings only; the comparisons here are a program's, so that everything runs offline.

**The hidden rule** (:class:`HiddenRule`, for tasks whose answer is a whole number: ``addition``, ``word_problems``).
With ``s`` the true answer, ``y`` the completion's answer (:func:`~thorndike.lm.tasks.extract_answer`), ``v`` the
number its leading digits spell and ``D = len(str(s))``:

    score = closeness - length_penalty * (characters of y beyond D)
    closeness = -min(log10(1 + |v - s|), D + 1)      (-(D + 1) when y does not start with a digit)

so the exact answer scores 0 (the maximum), an answer off by one about -0.3, off by 100 about -2, and each character
beyond the true answer's length (``"579=="``: two) costs ``length_penalty`` (0.5) more, whatever it is. The rule
prefers close answers and short ones; it is not the task's verifier (which gives credit per aligned digit).

**Pairs** (:func:`preference_pairs`): for each prompt, two distinct candidate completions, made by perturbing the
true answer (:func:`perturbed_answers`: exact, off by a little, one digit changed, junk characters appended, the last
digit dropped, a digit appended) or given by the caller (completions a model sampled: :func:`pairs_from_completions`);
the rule's higher-scoring one is ``chosen``; ties are dropped. Training pairs come from the task's training split;
held-out pairs (:func:`heldout_pairs`) from its test split only.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from thorndike.config import check, describe
from thorndike.interaction import EvalResult
from thorndike.lm.common import Completions, LMConfig, LMParts
from thorndike.lm.model import generate
from thorndike.lm.tasks import Task, extract_answer

__all__ = ["HiddenRule", "PreferencePair", "perturbed_answers", "preference_pairs", "heldout_pairs",
           "pairs_from_completions", "win_rate", "JUNK", "NUMERIC_TASKS", "PreferenceConfig", "PreferenceData",
           "due", "pair_result"]

# The tasks whose answers are whole numbers, which the hidden rule scores.
NUMERIC_TASKS = ("addition", "word_problems")
PAIR_SOURCES = ("perturbed", "samples", "mixed")

# Characters a junk suffix is made of: in the addition alphabet, and not digits, so a junk suffix leaves the number
# the answer spells unchanged and only its length grows.
JUNK = "+="
# The most characters a perturbed answer has beyond the true answer's (a junk suffix of 1..3).
MAX_EXTRA = 3


@dataclass(frozen=True)
class PreferencePair:
    """One comparison: for ``prompt``, the rule prefers completion ``chosen`` to ``rejected`` (texts without EOS)."""

    prompt: str
    chosen: str
    rejected: str


class HiddenRule:
    """The hidden scoring rule of the module docstring for ``task`` (its answers must be whole numbers >= 0).

    ``rule(prompt, completion)`` is the score (at most 0, higher is better); ``rule.prefers(prompt, a, b)`` whether
    ``a`` scores strictly above ``b``.
    """

    def __init__(self, task: Task, length_penalty: float = 0.5) -> None:
        check(math.isfinite(length_penalty) and length_penalty >= 0, "length_penalty", length_penalty,
              "a finite number >= 0")
        probe = task.sample_prompts(1, random.Random(0))[0]
        check(probe.answer.isdigit(), "task", task.name,
              "a task whose answers are whole numbers (addition, word_problems) for the hidden rule")
        self.task, self.length_penalty = task, length_penalty

    def __call__(self, prompt: str, completion: str) -> float:
        truth = self.task.answer(prompt)
        answer = extract_answer(completion)
        floor = len(truth) + 1
        digits = len(answer) - len(answer.lstrip("0123456789"))
        if digits == 0:
            closeness = -float(floor)
        else:
            distance = abs(int(answer[:digits]) - int(truth))
            # log10 of a huge distance (a long run of digits) is capped, so the score stays bounded below
            closeness = 0.0 - min(math.log10(1 + distance), float(floor))
        return closeness - self.length_penalty * max(0, len(answer) - len(truth))

    def scores(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        """The rule's score of each (prompt, completion)."""
        return [self(p, c) for p, c in zip(prompts, completions, strict=True)]

    def prefers(self, prompt: str, a: str, b: str) -> bool:
        return self(prompt, a) > self(prompt, b)


def perturbed_answers(answer: str, rng: random.Random, n: int) -> list[str]:
    """``n`` candidate answers (with repeats) made from the true ``answer`` by one of six perturbations, each equally
    likely: unchanged; off by 1..3 (never below 0); one digit replaced by another; 1..:data:`MAX_EXTRA` junk
    characters (:data:`JUNK`) appended; the last digit dropped (the answer itself when it has one digit); a digit
    appended."""
    out = []
    value = int(answer)
    for _ in range(n):
        kind = rng.randrange(6)
        if kind == 0:
            out.append(answer)
        elif kind == 1:
            offset = rng.randint(1, 3) * rng.choice((-1, 1))
            out.append(str(max(0, value + offset)))
        elif kind == 2:
            i = rng.randrange(len(answer))
            digit = rng.choice([d for d in "0123456789" if d != answer[i]])
            out.append(answer[:i] + digit + answer[i + 1:])
        elif kind == 3:
            out.append(answer + "".join(rng.choice(JUNK) for _ in range(rng.randint(1, MAX_EXTRA))))
        elif kind == 4:
            out.append(answer[:-1] if len(answer) > 1 else answer)
        else:
            out.append(answer + rng.choice("0123456789"))
    return out


def pairs_from_completions(prompt: str, completions: Sequence[str], rule: Callable[[str, str], float],
                           rng: random.Random, n_pairs: int = 1) -> list[PreferencePair]:
    """Up to ``n_pairs`` pairs of distinct-scoring completions of ``prompt`` (drawn from ``completions``, e.g. a
    model's samples), each labelled by ``rule``; fewer when the completions do not hold that many scores apart."""
    scored = [(c, rule(prompt, c)) for c in dict.fromkeys(completions)]  # distinct texts, first-seen order
    pairs = []
    for _ in range(n_pairs):
        candidates = [(a, b) for a in scored for b in scored if a[1] > b[1]]
        if not candidates:
            break
        (chosen, _), (rejected, _) = rng.choice(candidates)
        pairs.append(PreferencePair(prompt, chosen, rejected))
    return pairs


def preference_pairs(task: Task, rule: Callable[[str, str], float], n: int, rng: random.Random | torch.Generator,
                     split: str = "train", candidates: int = 4) -> list[PreferencePair]:
    """``n`` pairs on prompts of ``split``: per prompt, ``candidates`` perturbed answers (:func:`perturbed_answers`),
    of which one pair of distinct scores is labelled by ``rule``; a prompt whose candidates all score the same is
    skipped and another drawn."""
    check(n >= 0, "n", n, "a count >= 0")
    check(candidates >= 2, "candidates", candidates, "at least 2 (a pair)")
    if isinstance(rng, torch.Generator):
        rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=rng, device=rng.device).item()))
    pairs: list[PreferencePair] = []
    for _ in range(100 * max(n, 1)):
        if len(pairs) == n:
            break
        example = task.sample_prompts(1, rng, split)[0]
        pairs += pairs_from_completions(example.prompt, perturbed_answers(example.answer, rng, candidates), rule,
                                        rng)
    check(len(pairs) == n, "n", n, f"reachable: only {len(pairs)} pairs were found")
    return pairs


def heldout_pairs(task: Task, rule: Callable[[str, str], float], n: int, seed: int = 0,
                  candidates: int = 4) -> list[PreferencePair]:
    """A fixed set of ``n`` pairs on distinct TEST-split prompts (the same for the same ``seed``), one per prompt:
    no prompt a trainer saw (training pairs come from the training split) is judged."""
    rng = random.Random(seed)
    examples = task.heldout_set(2 * n + 16, seed)
    pairs: list[PreferencePair] = []
    for example in examples:
        if len(pairs) == n:
            break
        pairs += pairs_from_completions(example.prompt, perturbed_answers(example.answer, rng, candidates), rule,
                                        rng)
    check(len(pairs) == n, "n", n, f"at most {len(pairs)} for this task's test split")
    return pairs


def win_rate(policy_completions: Sequence[str], reference_completions: Sequence[str],
             rule: Callable[[str, str], float], prompts: Sequence[str]) -> float:
    """The fraction of ``prompts`` on which the policy's completion scores above the reference's under ``rule``, a
    tie counting one half (so two identical policies have a win rate of exactly 0.5)."""
    check(len(prompts) > 0, "prompts", len(prompts), "one or more prompts")
    total = 0.0
    for prompt, mine, theirs in zip(prompts, policy_completions, reference_completions, strict=True):
        a, b = rule(prompt, mine), rule(prompt, theirs)
        total += 1.0 if a > b else 0.5 if a == b else 0.0
    return total / len(prompts)


# ---- what the preference trainers share (reward_model, dpo, rlhf_ppo) ------------------------------------------------


@dataclass
class PreferenceConfig(LMConfig):
    """The LM fields (:class:`~thorndike.lm.common.LMConfig`) and those of the hidden rule and its pairs."""

    length_penalty: float = describe("the hidden rule's cost per answer character beyond the true answer's length",
                                     0.5)
    candidates: int = describe("perturbed answers drawn per prompt, of which one pair is labelled", 4, at_most=64)
    heldout_pairs: int = describe("size of the fixed set of held-out pairs (test-split prompts) scored by the "
                                  "held-out preference accuracy", 200, at_most=10_000)
    pair_source: str = describe("where training pairs' completions come from: perturbed (perturbations of the true "
                                "answer), samples (the frozen reference's samples, `candidates` per prompt, as "
                                "when people compare a model's outputs) or mixed (half each)", "perturbed")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.task in NUMERIC_TASKS, "task", self.task,
              f"one of {list(NUMERIC_TASKS)} (the hidden rule scores whole-number answers)")
        check(self.length_penalty >= 0, "length_penalty", self.length_penalty, ">= 0")
        check(self.candidates >= 2, "candidates", self.candidates, "at least 2 (a pair)")
        check(self.heldout_pairs >= 1, "heldout_pairs", self.heldout_pairs, "at least 1")
        check(self.pair_source in PAIR_SOURCES, "pair_source", self.pair_source, f"one of {list(PAIR_SOURCES)}")
        # Perturbed candidates run up to MAX_EXTRA characters past the longest answer, and every one must fit the
        # model (a policy scores them): the default generation budget covers them and their EOS.
        longest = self.build_task().max_answer_len + MAX_EXTRA + 1
        if self.max_new_tokens is None:
            self.max_new_tokens = longest
        check(self.max_new_tokens >= longest, "max_new_tokens", self.max_new_tokens,
              f"at least {longest} for the preference trainers (the longest perturbed answer and EOS), or None")


def due(every: int, before: int, after: int) -> bool:
    """Whether a multiple of ``every`` (> 0) lies in (before, after]: counted from step 0, so a resumed run measures
    at the same steps as an uninterrupted one."""
    return every > 0 and after // every != before // every


class PreferenceData:
    """The hidden rule of an LM trainer's task, its training pairs (drawn with the run's generator, so a seed fixes
    them and a checkpoint's generator state resumes them), its fixed held-out pairs, and batching pairs for a model."""

    def __init__(self, lm: LMParts, config: PreferenceConfig) -> None:
        self.lm, self.config = lm, config
        self.rule = HiddenRule(lm.task, config.length_penalty)
        self._heldout: list[PreferencePair] | None = None

    def sample(self, n: int, generator: torch.Generator) -> list[PreferencePair]:
        """``n`` training pairs (training-split prompts) from ``pair_source``: perturbed answers, the frozen
        reference's samples (``lm.reference()``), or the first half of each."""
        source = self.config.pair_source
        perturbed = n if source == "perturbed" else n // 2 if source == "mixed" else 0
        pairs = preference_pairs(self.lm.task, self.rule, perturbed, generator, "train", self.config.candidates)
        return pairs + self.sampled_pairs(n - perturbed, generator) if n > perturbed else pairs

    def sampled_pairs(self, n: int, generator: torch.Generator, temperature: float = 1.0) -> list[PreferencePair]:
        """``n`` pairs of the frozen reference's own samples (``candidates`` per training prompt), labelled by the
        rule; a prompt whose samples all score the same gives none, so more prompts are drawn until ``n``."""
        model, tokenizer = self.lm.reference(), self.lm.tokenizer
        rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item()))
        k = self.config.candidates
        pairs: list[PreferencePair] = []
        for _ in range(100):
            if len(pairs) >= n:
                break
            prompts = [e.prompt for e in self.lm.sample_examples(n, generator)]
            repeated = [p for p in prompts for _ in range(k)]
            ids, mask = tokenizer.batch(repeated, device=self.lm.device)
            ids, _, completion = generate(model, ids, mask, self.lm.max_new_tokens, eos_id=tokenizer.eos_id,
                                          pad_id=tokenizer.pad_id, temperature=temperature, generator=generator)
            texts = tokenizer.decode_batch(torch.where(completion, ids, tokenizer.pad_id))
            for i, prompt in enumerate(prompts):
                # a sample cut at the generation budget has no EOS, and with one would not fit the model: left out
                fits = [t for t in texts[i * k:(i + 1) * k] if len(t) < self.lm.max_new_tokens]
                pairs += pairs_from_completions(prompt, fits, self.rule, rng)
        check(len(pairs) >= n, "pair_source", self.config.pair_source,
              f"able to give {n} pairs: the reference's samples scored alike on almost every prompt")
        return pairs[:n]

    def heldout(self) -> list[PreferencePair]:
        """The fixed held-out pairs (test-split prompts; seed 0, the same for every run)."""
        if self._heldout is None:
            self._heldout = heldout_pairs(self.lm.task, self.rule, self.config.heldout_pairs, 0,
                                          self.config.candidates)
        return self._heldout

    def batch(self, pairs: Sequence[PreferencePair]) -> Completions:
        """The pairs as ONE batch of 2B rows (one forward pass for both sides): rows 0..B-1 the prompts with their
        chosen completions, rows B..2B-1 with their rejected ones, each ending in EOS."""
        prompts = [p.prompt for p in pairs]
        return self.lm.join(prompts + prompts, [p.chosen for p in pairs] + [p.rejected for p in pairs])

    @torch.no_grad()
    def heldout_scores(self, score: Callable[[Completions], Tensor], n: int | None = None,
                       chunk: int = 256) -> tuple[Tensor, Tensor]:
        """``score`` (a batch -> ``[rows]``) of the chosen and of the rejected completion of the first ``n`` held-out
        pairs (all when None)."""
        pairs = self.heldout()[:n]
        chosen, rejected = [], []
        for start in range(0, len(pairs), chunk):
            part = pairs[start:start + chunk]
            scores = score(self.batch(part))
            chosen.append(scores[:len(part)])
            rejected.append(scores[len(part):])
        return torch.cat(chosen), torch.cat(rejected)

    @torch.no_grad()
    def greedy_completions(self, model: nn.Module, prompts: list[str]) -> list[str]:
        """``model``'s greedy completion of each prompt (the policy's or the frozen reference's)."""
        tokenizer = self.lm.tokenizer
        ids, mask = tokenizer.batch(prompts, device=self.lm.device)
        was_training = model.training
        model.eval()
        try:
            ids, _, completion = generate(model, ids, mask, self.lm.max_new_tokens, eos_id=tokenizer.eos_id,
                                          pad_id=tokenizer.pad_id, greedy=True)
        finally:
            model.train(was_training)
        return tokenizer.decode_batch(torch.where(completion, ids, tokenizer.pad_id))

    def win_rate(self, policy: nn.Module, reference: nn.Module, n: int) -> float:
        """:func:`win_rate` of ``policy``'s greedy completions against ``reference``'s on the first ``n`` held-out
        prompts, judged by the hidden rule (0.5 when the two decode the same)."""
        prompts = [e.prompt for e in self.lm.heldout(n)]
        return win_rate(self.greedy_completions(policy, prompts), self.greedy_completions(reference, prompts),
                        self.rule, prompts)

    def hidden_score(self, prompts: Sequence[str], completions: Sequence[str]) -> float:
        """The hidden rule's mean score of the completions."""
        return sum(self.rule.scores(prompts, completions)) / max(len(prompts), 1)


def pair_result(chosen: Tensor, rejected: Tensor) -> EvalResult:
    """Held-out pair accuracy as an :class:`EvalResult`: per pair 1 (chosen scored strictly above rejected) or 0."""
    correct = (chosen > rejected).float().tolist()
    mean = sum(correct) / max(len(correct), 1)
    std = math.sqrt(sum((c - mean) ** 2 for c in correct) / max(len(correct), 1))
    return EvalResult(mean, std, correct, [1] * len(correct))
