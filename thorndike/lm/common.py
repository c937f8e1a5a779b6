"""What every language-model trainer shares (issue #18): the config fields of the task and the model, building the
tokenizer and the model from them, the warm start from an earlier run, the frozen reference, batching prompts with
completions, sampling groups of completions, and the held-out evaluation.

Mostly composition: a trainer (``sft``, ``grpo``, ``dpo``, ...) is an :class:`LMAgent` (the family base, one level
below :class:`~thorndike.agent.Agent`, which answers ``evaluate`` and ``complete`` from ``self.lm``) whose ``Config``
extends :class:`LMConfig` and whose ``build`` makes one :class:`LMParts` and registers ``self.lm.components()`` (the
model and the tokenizer) with its own optimiser in ``self.components``.

A training STEP of an LM trainer is one batch: one optimiser update on ``batch_size`` examples (SFT, DPO, the reward
model) or one round of sampling completions for ``batch_size`` prompts and updating on them (GRPO, PPO, SCST).
``log_every`` steps make one row of ``progress.csv``; the run options' ``eval_every`` and ``checkpoint_every`` count
the same steps.

The reference model (the KL anchor of GRPO and RLHF-PPO, DPO's pi_ref) is the policy as it was built: the weights of
``init_from`` when given, else the random initial weights. It is SAVED in checkpoints (:meth:`LMParts.reference`
registers it as a component), so a resumed or loaded run needs nothing outside its folder to rebuild it; only the
construction reads ``init_from``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from thorndike.agent import Agent
from thorndike.config import ConfigError, check, check_limits, describe
from thorndike.core.schedules import Linear
from thorndike.interaction import EvalResult
from thorndike.lm.model import HFCausalLM, TinyTransformer, TransformerConfig, generate
from thorndike.lm.tasks import TASKS, Example, Task, make_task
from thorndike.lm.tokenizer import CharTokenizer

__all__ = ["Completions", "LMAgent", "LMConfig", "LMParts", "TASK_SIZE", "build_task", "evaluate_heldout",
           "heldout_columns", "lm_curves", "load_warm_start", "refuse_env"]

# The one parameter of each task that ``task_size`` sets (None keeps the task's default).
TASK_SIZE = {"addition": "digits", "addition_fixed_width": "digits", "sorting": "length", "parentheses": "max_len",
             "word_problems": "max_number"}
BACKBONES = ("tiny", "gpt2")
POSITIONS = ("rotary", "learned")
# The largest model a config may ask for: a bigger one would not train on a CPU in any sensible time, and refusing
# it by name is better than an allocation failure (the contract checks every count at its largest).
MAX_PARAMETERS = 50_000_000


def build_task(name: str, size: int | None) -> Task:
    """The task ``name`` with its size parameter (:data:`TASK_SIZE`) set to ``size`` (its default when None)."""
    kwargs = {} if size is None else {TASK_SIZE[name]: size}
    return make_task(name, **kwargs)


@dataclass
class LMConfig:
    """The fields every LM trainer has: the task, the model, the optimiser's step size and batch, generation,
    evaluation and the warm start. An algorithm's Config extends it and calls ``super().__post_init__()``."""

    task: str = describe(f"the task with a verifiable answer: one of {sorted(TASKS)}", "addition")
    task_size: int | None = describe("the task's size: digits (addition), length (sorting), max_len (parentheses) "
                                     "or max_number (word_problems); None: the task's default", None, at_most=999)
    backbone: str = describe("the model: tiny (thorndike's TinyTransformer) or gpt2 (Hugging Face GPT-2 built from a "
                             "config with random weights; the [lm] extra)", "tiny")
    d_model: int = describe("width of the model's residual stream", 64, at_most=2048)
    n_layers: int = describe("transformer blocks", 2, at_most=48)
    n_heads: int = describe("attention heads per block (d_model must be divisible by it)", 4, at_most=64)
    positions: str = describe("positional encoding of the tiny backbone: rotary or learned (gpt2: learned)",
                              "rotary")
    lr: float = describe("Adam step size", 1e-3)
    lr_final_fraction: float | None = describe("decay the step size linearly from lr to lr * lr_final_fraction over "
                                               "lr_decay_steps steps, then hold it; None: a constant lr", None)
    lr_decay_steps: int = describe("steps of the linear decay of the step size (lr_final_fraction)", 1000,
                                   at_most=10_000_000)
    batch_size: int = describe("examples (SFT, DPO) or prompts (GRPO, PPO) per step", 32, at_most=4096)
    max_grad_norm: float = describe("clip the gradient's global norm to this (0: no clipping)", 1.0)
    max_new_tokens: int | None = describe("tokens generated per completion; None: the task's longest answer plus "
                                          "EOS", None, at_most=512)
    eval_prompts: int = describe("size of the fixed held-out set (the task's test split) that evaluate() scores",
                                 200, at_most=10_000)
    log_every: int = describe("steps per row of progress.csv", 10, at_most=100_000)
    heldout_every: int = describe("steps between held-out evaluations logged in progress.csv (heldout/accuracy, "
                                  "heldout/reward); 0: none during learn", 0)
    init_from: str | None = describe("warm start: a run folder or checkpoint of an earlier LM run (e.g. sft) whose "
                                     "model weights to start from, and the reference's; None: random weights", None)

    def __post_init__(self) -> None:
        check_limits(self)  # a count above its bound is refused by its own name before any check below reads it
        check(isinstance(self.task, str) and self.task in TASKS, "task", self.task, f"one of {sorted(TASKS)}")
        try:
            task = build_task(self.task, self.task_size)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"invalid config: task_size={self.task_size!r}; for task {self.task!r} task_size sets "
                              f"{TASK_SIZE[self.task]}: {err}") from None
        check(self.backbone in BACKBONES, "backbone", self.backbone, f"one of {list(BACKBONES)}")
        for name in ("d_model", "n_layers", "n_heads", "batch_size", "eval_prompts", "log_every"):
            check(getattr(self, name) >= 1, name, getattr(self, name), "a positive whole number")
        check(self.d_model % self.n_heads == 0, "d_model", self.d_model, f"divisible by n_heads={self.n_heads}")
        check(self.positions in POSITIONS, "positions", self.positions, f"one of {list(POSITIONS)}")
        if self.backbone == "tiny" and self.positions == "rotary":
            check((self.d_model // self.n_heads) % 2 == 0, "d_model", self.d_model,
                  f"such that d_model / n_heads (now {self.d_model // self.n_heads}) is even, for rotary positions")
        # The parameter count of the blocks (12 d^2 each) and the tied embedding: a model too big for a CPU is
        # refused by the fields that make it so.
        parameters = 12 * self.d_model**2 * self.n_layers + len(task.alphabet) * self.d_model
        check(parameters <= MAX_PARAMETERS, "d_model", self.d_model,
              f"small enough, with n_layers={self.n_layers}, for at most {MAX_PARAMETERS:,} parameters (this model "
              f"would have about {parameters:,})")
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(self.lr_final_fraction is None or 0 <= self.lr_final_fraction <= 1, "lr_final_fraction",
              self.lr_final_fraction, "None (a constant lr) or in [0, 1]")
        check(self.lr_decay_steps >= 1, "lr_decay_steps", self.lr_decay_steps, "a positive whole number")
        check(self.max_grad_norm >= 0, "max_grad_norm", self.max_grad_norm, ">= 0 (0: no clipping)")
        check(self.max_new_tokens is None or self.max_new_tokens >= 1, "max_new_tokens", self.max_new_tokens,
              "None (the task's longest answer plus EOS) or at least 1")
        check(self.heldout_every >= 0, "heldout_every", self.heldout_every, ">= 0 (0: none)")
        check(self.init_from is None or (isinstance(self.init_from, str) and self.init_from != ""), "init_from",
              self.init_from, "None or the path of a run folder or checkpoint")

    def build_task(self) -> Task:
        return build_task(self.task, self.task_size)


def refuse_env(agent: Any) -> None:
    """An LM trainer learns from a task's prompts, never from an env: passing one is one clear error."""
    if agent.env_setup is not None:
        raise ValueError(f"{agent.name} learns from a task's prompts, not from an env: make it without env=... and "
                         f"choose the task with task=... (one of {sorted(TASKS)}), e.g. th.make({agent.name!r}, "
                         "task='addition')")


@dataclass
class Completions:
    """A batch of prompts and completions, LEFT-padded into one sequence per row (:meth:`LMParts.join`,
    :meth:`LMParts.sample`).

    ``ids, attention_mask, completion_mask`` are ``[B, L]``; ``token_mask = completion_mask[:, 1:]`` is the mask of
    the per-token log-probabilities ``[B, L-1]`` (:func:`thorndike.lm.model.sequence_logprobs`). ``prompts`` and
    ``texts`` (the decoded completions) are per row.
    """

    ids: Tensor
    attention_mask: Tensor
    completion_mask: Tensor
    prompts: list[str]
    texts: list[str]

    @property
    def token_mask(self) -> Tensor:
        return self.completion_mask[:, 1:]

    def select(self, rows: Tensor) -> Completions:
        """The rows ``rows`` (indices, or a boolean mask over the rows) of this batch."""
        if rows.dtype == torch.bool:
            rows = rows.nonzero().squeeze(-1)
        index = rows.tolist()
        return Completions(self.ids[rows], self.attention_mask[rows], self.completion_mask[rows],
                           [self.prompts[i] for i in index], [self.texts[i] for i in index])


class TokenizerState:
    """The tokenizer as a checkpoint component: it is rebuilt from the task, so loading checks that the saved one
    is the same (a checkpoint of another task's run is refused by name)."""

    def __init__(self, tokenizer: CharTokenizer) -> None:
        self.tokenizer = tokenizer

    def state_dict(self) -> dict[str, Any]:
        return self.tokenizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state != self.tokenizer.state_dict():
            raise ValueError(f"this checkpoint's tokenizer {state} differs from the task's "
                             f"{self.tokenizer.state_dict()}: it is a run on another task")


class LMParts:
    """The task, tokenizer, model (and, when asked, the frozen reference) of an LM trainer, and what they do
    together: sample prompts, join prompts with completions, sample groups of completions, complete prompts and
    evaluate on the held-out set.

    ``config`` is an :class:`LMConfig`; ``device`` the agent's. The model is built with torch's global generator,
    which the run has seeded, so a seed fixes the initial weights; ``init_from`` then replaces them.
    """

    def __init__(self, config: LMConfig, device: torch.device) -> None:
        self.config, self.device = config, device
        self.task = config.build_task()
        self.tokenizer = CharTokenizer(self.task.alphabet)
        self.max_new_tokens = config.max_new_tokens or self.task.max_answer_len + 1
        # BOS, the longest prompt, then the completion
        self.max_len = 1 + self.task.max_prompt_len + self.max_new_tokens
        self.model = self.build_model().to(device)
        if config.init_from is not None:
            load_warm_start(self.model, config.init_from, self.tokenizer)
        self._reference: nn.Module | None = None
        self._heldout: list[Example] = []

    # ---- building ---------------------------------------------------------------------------------------------

    def build_model(self) -> nn.Module:
        config = self.config
        if config.backbone == "gpt2":
            from transformers import GPT2Config

            return HFCausalLM.from_config(GPT2Config(
                vocab_size=self.tokenizer.vocab_size, n_positions=self.max_len, n_embd=config.d_model,
                n_layer=config.n_layers, n_head=config.n_heads, bos_token_id=self.tokenizer.bos_id,
                eos_token_id=self.tokenizer.eos_id, pad_token_id=self.tokenizer.pad_id,
                resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
        return TinyTransformer(TransformerConfig(vocab_size=self.tokenizer.vocab_size, d_model=config.d_model,
                                                 n_layers=config.n_layers, n_heads=config.n_heads,
                                                 max_len=self.max_len, positions=config.positions))

    def reference(self) -> nn.Module:
        """The frozen reference: a copy of the model as built (warm-start or initial weights), no gradients, in
        eval mode. Register it as a checkpoint component (``components["reference"]``) so resume restores it."""
        if self._reference is None:
            self._reference = copy.deepcopy(self.model).eval()
            self._reference.requires_grad_(False)
        return self._reference

    def components(self) -> dict[str, Any]:
        """The model and the tokenizer, for the agent's ``components``."""
        return {"model": self.model, "tokenizer": TokenizerState(self.tokenizer)}

    def optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.config.lr)

    def step_size(self, step: int) -> float:
        """The step size at training step ``step``: ``lr``, or its linear decay to ``lr * lr_final_fraction`` (a
        function of the step alone, so a resumed run continues the same schedule)."""
        config = self.config
        if config.lr_final_fraction is None:
            return config.lr
        return Linear(config.lr, config.lr * config.lr_final_fraction, config.lr_decay_steps)(step)

    def clip_and_step(self, optimizer: torch.optim.Optimizer, loss: Tensor, step: int,
                      parameters: list[nn.Parameter] | None = None) -> Tensor:
        """Backward, clip the global norm of ``parameters``' gradients (the model's by default) to ``max_grad_norm``,
        step with the step size of training step ``step``; returns the norm before clipping (a tensor, no host
        sync)."""
        for group in optimizer.param_groups:
            group["lr"] = self.step_size(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = (torch.nn.utils.clip_grad_norm_(self.model.parameters() if parameters is None else parameters,
                                                self.config.max_grad_norm)
                if self.config.max_grad_norm > 0 else loss.new_zeros(()))
        optimizer.step()
        return norm

    # ---- data ---------------------------------------------------------------------------------------------------

    def sample_examples(self, n: int, generator: torch.Generator) -> list[Example]:
        """``n`` training examples (never a held-out prompt), drawn with the run's generator."""
        return self.task.sample_prompts(n, generator, split="train")

    def join(self, prompts: list[str], completions: list[str], eos: bool = True) -> Completions:
        """Prompts (BOS first) followed by their completions (EOS last when ``eos``), LEFT-padded into one batch: the
        completion mask is True on the completion's tokens (and its EOS)."""
        if len(prompts) != len(completions):
            raise ValueError(f"join: {len(prompts)} prompts but {len(completions)} completions")
        tok = self.tokenizer
        rows = [(tok.encode(p, bos=True), tok.encode(c, eos=eos)) for p, c in zip(prompts, completions)]
        length = max(len(p) + len(c) for p, c in rows)
        ids = torch.full((len(rows), length), tok.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.bool)
        completion = torch.zeros((len(rows), length), dtype=torch.bool)
        for row, (p, c) in enumerate(rows):
            start = length - len(p) - len(c)
            ids[row, start:] = torch.tensor(p + c, dtype=torch.long)
            mask[row, start:] = True
            completion[row, length - len(c):] = True
        return Completions(ids.to(self.device), mask.to(self.device), completion.to(self.device), list(prompts),
                           list(completions))

    @torch.no_grad()
    def sample(self, prompts: list[str], group_size: int = 1, generator: torch.Generator | None = None,
               temperature: float = 1.0, top_k: int | None = None, greedy: bool = False) -> Completions:
        """``group_size`` completions of each prompt (rows prompt-major: the G completions of prompt i are rows
        i*G .. i*G+G-1), sampled with ``generator`` (the run's, so a seed fixes them)."""
        repeated = [p for p in prompts for _ in range(group_size)]
        ids, mask = self.tokenizer.batch(repeated, device=self.device)
        was_training = self.model.training
        self.model.eval()
        try:
            ids, mask, completion = generate(self.model, ids, mask, self.max_new_tokens, eos_id=self.tokenizer.eos_id,
                                             pad_id=self.tokenizer.pad_id, temperature=temperature, top_k=top_k,
                                             greedy=greedy, generator=generator)
        finally:
            self.model.train(was_training)
        # decode the completion's tokens alone (the prompt's are PAD there, which decode skips): one host transfer
        texts = self.tokenizer.decode_batch(torch.where(completion, ids, self.tokenizer.pad_id))
        return Completions(ids, mask, completion, repeated, texts)

    def complete(self, prompts: list[str], greedy: bool = True, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None) -> list[str]:
        """The model's completion of each prompt: the greedy one, or one sample (``greedy=False``)."""
        if isinstance(prompts, str):
            prompts = [prompts]
        for prompt in prompts:
            self.tokenizer.encode(prompt)  # an unknown character is refused here, naming it and the alphabet
            if len(prompt) > self.task.max_prompt_len:
                raise ValueError(f"prompt {prompt!r} is longer than the task's longest prompt "
                                 f"({self.task.max_prompt_len} characters), which sizes the model")
        return self.sample(list(prompts), 1, generator, temperature, top_k, greedy).texts

    def rewards(self, batch: Completions, exact: bool = False) -> Tensor:
        """The task's verifier on each row: partial credit (``task.reward``) or exact match (1/0), ``[B]``."""
        if exact:
            values = [float(self.task.is_correct(p, c)) for p, c in zip(batch.prompts, batch.texts)]
        else:
            values = [self.task.reward(p, c) for p, c in zip(batch.prompts, batch.texts)]
        return torch.tensor(values, dtype=torch.float32, device=self.device)

    # ---- the held-out evaluation --------------------------------------------------------------------------------

    def heldout(self, n: int) -> list[Example]:
        """The first ``n`` prompts of the task's fixed held-out set (distinct test-split prompts, seed 0: the same for
        every run, so runs are compared on the same prompts)."""
        if len(self._heldout) < n:
            try:
                self._heldout = self.task.heldout_set(n, seed=0)
            except ValueError as err:
                raise ConfigError(f"invalid config: eval_prompts={n}; {err}") from None
        return self._heldout[:n]

    @torch.no_grad()
    def evaluate(self, n: int | None = None, chunk: int = 512) -> dict[str, Any]:
        """Greedy completions of the first ``n`` held-out prompts (``eval_prompts`` when None): ``accuracy`` (exact
        match), ``reward`` (the task's partial credit), per prompt ``correct`` and completion ``lengths``."""
        examples = self.heldout(self.config.eval_prompts if n is None else n)
        correct, rewards, lengths = [], [], []
        for start in range(0, len(examples), chunk):
            part = examples[start:start + chunk]
            batch = self.sample([e.prompt for e in part], greedy=True)
            for example, text in zip(part, batch.texts):
                correct.append(float(self.task.is_correct(example.prompt, text)))
                rewards.append(self.task.reward(example.prompt, text))
            lengths += batch.completion_mask.sum(1).tolist()
        count = max(len(correct), 1)
        return {"accuracy": sum(correct) / count, "reward": sum(rewards) / count, "correct": correct,
                "lengths": lengths}


def evaluate_heldout(lm: LMParts, episodes: int | None = None) -> EvalResult:
    """The held-out evaluation as an :class:`EvalResult`: ``returns`` are per prompt 1 (exact match) or 0, so
    ``mean`` is the greedy exact-match ACCURACY on the first ``episodes`` held-out prompts (``eval_prompts`` when
    None); ``lengths`` are the completions' token counts (with EOS)."""
    result = lm.evaluate(episodes)
    returns = result["correct"]
    mean = sum(returns) / max(len(returns), 1)
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / max(len(returns), 1))
    return EvalResult(mean, std, returns, [int(n) for n in result["lengths"]])



class LMAgent(Agent):
    """The family base of the LM trainers (one level below the lifecycle, as ``OnPolicyAgent`` is): an agent with no
    env whose ``self.lm`` (an :class:`LMParts`, made in ``build``) answers ``evaluate`` and ``complete``. Each
    trainer keeps its own build, loop and pictures; the reward model overrides ``evaluate`` (pair accuracy)."""

    action_spaces = ()
    lm: LMParts

    def evaluate(self, episodes: int | None = None, deterministic: bool = True, seed: int | None = None,
                 **_: Any) -> EvalResult:
        """Greedy exact-match ACCURACY (the mean) on the first ``episodes`` prompts of the fixed held-out set
        (``eval_prompts`` when None); each return is 1 (correct) or 0."""
        return evaluate_heldout(self.lm, episodes)

    def complete(self, prompts: list[str] | str, greedy: bool = True, temperature: float = 1.0,
                 top_k: int | None = None, seed: int = 0) -> list[str]:
        """The model's completions of ``prompts``: greedy, or sampled with a generator seeded by ``seed``, which
        leaves the training stream alone. (The reward model's are its trunk's: a check that a run saved and loaded
        whole, not a policy.)"""
        generator = torch.Generator(self.device).manual_seed(seed)
        return self.lm.complete(prompts, greedy, temperature, top_k, generator)

def heldout_columns(lm: LMParts, before: int, after: int) -> dict[str, float]:
    """The held-out accuracy and mean reward for the row of ``progress.csv`` that ends at step ``after`` (the last
    row ended at ``before``): measured when a multiple of ``heldout_every`` lies in (before, after], counted from
    step 0 so that a resumed run evaluates at the same steps; NaN otherwise (the columns are in every row, as the
    CSV's header is the first row's keys); no columns when ``heldout_every`` is 0."""
    every = lm.config.heldout_every
    if every == 0:
        return {}
    if after // every == before // every:
        return {"heldout/accuracy": math.nan, "heldout/reward": math.nan}
    result = lm.evaluate()
    return {"heldout/accuracy": result["accuracy"], "heldout/reward": result["reward"]}


# ---- the warm start -----------------------------------------------------------------------------------------------


def read_model_state(path: str) -> dict[str, Any]:
    """The checkpoint (a run folder's final.pt or newest checkpoint, or a file) named by ``init_from``."""
    from thorndike.core.checkpoint import list_checkpoints, load_checkpoint

    where = Path(path)
    if where.is_dir():
        candidates = ([where / "final.pt"] if (where / "final.pt").is_file() else []) or \
            list_checkpoints(where / "checkpoints")[-1:]
        if not candidates:
            raise ConfigError(f"invalid config: init_from={path!r} is a folder with no final.pt and no checkpoints; "
                              "give the run folder of a finished LM run (e.g. an sft run) or one of its checkpoints")
        where = candidates[0]
    elif not where.is_file():
        raise ConfigError(f"invalid config: init_from={path!r} does not exist; give the run folder of an earlier LM "
                          "run (e.g. runs/sft-...) or a checkpoint file, or None for random weights")
    try:
        state = load_checkpoint(where)
    except Exception as err:  # a damaged or foreign file: say which field pointed at it
        raise ConfigError(f"invalid config: init_from={path!r}: {where} cannot be read as a checkpoint ({err})") \
            from None
    model = state.get("components", {}).get("model") if isinstance(state, dict) else None
    if model is None:
        raise ConfigError(f"invalid config: init_from={path!r}: {where} is a checkpoint of {state.get('algo')!r}, "
                          "which has no language model; give an LM run (sft, grpo, dpo, ...)")
    return state


def load_warm_start(model: nn.Module, path: str, tokenizer: CharTokenizer) -> None:
    """Load the model weights of the run or checkpoint at ``path`` into ``model``; a different tokenizer or model
    shape is refused naming ``init_from`` and the fields to match."""
    state = read_model_state(path)
    saved_tokenizer = state["components"].get("tokenizer")
    if saved_tokenizer is not None and saved_tokenizer != tokenizer.state_dict():
        raise ConfigError(f"invalid config: init_from={path!r} is a run on another task (its tokenizer is "
                          f"{saved_tokenizer}, this task's {tokenizer.state_dict()}); give task and task_size as "
                          "that run had them")
    weights = state["components"]["model"]
    mine = model.state_dict()
    shapes = {k: tuple(v.shape) for k, v in weights.items()}
    expected = {k: tuple(v.shape) for k, v in mine.items()}
    if shapes != expected:
        saved = state.get("config", {})
        fields = {k: saved.get(k) for k in ("backbone", "d_model", "n_layers", "n_heads", "positions", "task",
                                             "task_size", "max_new_tokens") if k in saved}
        raise ConfigError(f"invalid config: init_from={path!r} holds a model of another shape; set the model fields "
                          f"as that run had them: {fields}")
    model.load_state_dict(weights)


def lm_curves(run_dir: str | Path, path: str | Path, columns: tuple[str, ...]) -> Path:
    """One panel per column of ``progress.csv`` that the run logged (e.g. ``loss``, ``heldout/accuracy``, ``kl``)
    against training steps: an LM run's ``curve.png``; NaN cells (rows without an evaluation) are skipped."""
    from thorndike.core.logger import read_progress
    from thorndike.plot import _save, plt

    progress = read_progress(run_dir)
    shown = [c for c in columns if c in progress and any(not math.isnan(v) for v in progress[c])]
    fig, axes = plt.subplots(1, max(len(shown), 1), figsize=(3.6 * max(len(shown), 1), 3.2), dpi=110,
                             squeeze=False)
    for ax, column in zip(axes[0], shown):
        points = [(s, v) for s, v in zip(progress["step"], progress[column]) if not math.isnan(v)]
        ax.plot(*zip(*points), "-o" if len(points) < 30 else "-", markersize=3)
        ax.set_xlabel("training steps (batches)")
        ax.set_title(column, fontsize=9)
        ax.grid(alpha=0.3)
    return _save(fig, path)
