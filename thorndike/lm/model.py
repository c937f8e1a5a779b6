"""The language model that RL for language models fine-tunes: a tiny decoder-only transformer, the functions the RL
trainers call on it (per-token log-probabilities, batched sampling with a KV cache), and an adapter that puts a
Hugging Face causal LM behind the same interface.

The interface, shared by :class:`TinyTransformer` and :class:`HFCausalLM`:

- ``model(ids [B, L], attention_mask [B, S], past_key_values=None, use_cache=False, return_hidden=False)`` gives
  ``(logits [B, L, V], cache or None)``, and ``(logits, cache, hidden [B, L, d])`` with ``return_hidden=True``
  (``hidden`` is after the final norm: what a value head reads). ``attention_mask`` covers the cached tokens and the
  new ones (``S = past + L``), True on real tokens.
- Rows are LEFT-padded. Each token's position is the number of real tokens before it (the mask's cumulative sum minus
  one), so a padded row computes for its real tokens what the same row unpadded does; padded keys are masked out.
- ``model.max_len``: the longest sequence the model takes.

Notes: F3 L1552-L1606 (RL for LLMs: a policy over tokens; PPO and GRPO score completions with per-token
log-probabilities). The transformer is the usual pre-norm GPT (Radford et al. 2019) with rotary positions (Su et al.
2021) as an option.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thorndike.config import check, check_limits, describe

__all__ = [
    "HFCausalLM",
    "TinyTransformer",
    "TransformerConfig",
    "count_parameters",
    "generate",
    "positions_from_mask",
    "sequence_logprobs",
    "token_logprobs",
]

KVCache = list[tuple[Tensor, Tensor]]  # per layer (k, v), each [B, n_heads, S, head_dim]; rotary already applied to k


@dataclass
class TransformerConfig:
    """The shape of a :class:`TinyTransformer`."""

    vocab_size: int = field(metadata={"help": "number of token ids (the tokenizer's vocab_size)"})
    d_model: int = describe("width of the residual stream", 128)
    n_layers: int = describe("number of transformer blocks", 2, at_most=256)
    n_heads: int = describe("attention heads per block; d_model must be divisible by it", 4)
    d_ff: int | None = describe("hidden width of each block's MLP; None: 4 * d_model", None)
    max_len: int = describe("the longest sequence (prompt and completion) the model takes", 64, at_most=2**20)
    dropout: float = describe("dropout on attention weights and on each residual branch (training only)", 0.0)
    positions: str = describe("positional encoding: rotary (applied to queries and keys) or learned (added to the "
                              "token embeddings)", "rotary")
    tie_embeddings: bool = describe("the output head reuses the token embedding's weights", True)

    def __post_init__(self) -> None:
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        check_limits(self)
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_len"):
            value = getattr(self, name)
            check(isinstance(value, int) and not isinstance(value, bool) and value >= 1, name, value,
                  "a positive whole number")
        check(self.d_model % self.n_heads == 0, "d_model", self.d_model,
              f"divisible by n_heads={self.n_heads} (each head gets d_model / n_heads dimensions)")
        check(self.positions in ("rotary", "learned"), "positions", self.positions, "one of ['learned', 'rotary']")
        if self.positions == "rotary":
            check(self.head_dim % 2 == 0, "d_model", self.d_model,
                  f"such that d_model / n_heads (now {self.head_dim}) is even, for rotary positions (they rotate "
                  "pairs of dimensions)")
        check(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "in [0, 1)")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def positions_from_mask(attention_mask: Tensor) -> Tensor:
    """Each token's position: how many real tokens come before it (``cumsum(mask) - 1``), 0 on leading padding.

    >>> positions_from_mask(torch.tensor([[False, False, True, True], [True, True, True, True]])).tolist()
    [[0, 0, 0, 1], [0, 1, 2, 3]]
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def rotary_tables(max_len: int, head_dim: int, base: float = 10_000.0) -> tuple[Tensor, Tensor]:
    """``(cos, sin)``, each ``[max_len, head_dim / 2]``: pair i at position p turns by p * base^(-2i/head_dim)."""
    inverse_frequency = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.arange(max_len, dtype=torch.float64)[:, None] * inverse_frequency[None, :]
    return angles.cos().float(), angles.sin().float()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x [B, H, L, head_dim]``'s pairs (dimension i with i + head_dim/2) by the angles ``cos, sin
    [B, 1, L, head_dim/2]``; a query-key dot product then depends on the two positions only through their difference."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class SelfAttention(nn.Module):
    """Multi-head causal self-attention over the cached keys and values and the new ones."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim, self.dropout = config.n_heads, config.head_dim, config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)

    def forward(self, x: Tensor, allowed: Tensor, rotary: tuple[Tensor, Tensor] | None,
                past: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if rotary is not None:  # on contiguous copies: the elementwise rotation of permuted views is ~4x slower on CPU
            q, k = apply_rotary(q.contiguous(), *rotary), apply_rotary(k.contiguous(), *rotary)
        if past is not None:
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, length, width)), (k, v)


class Block(nn.Module):
    """Pre-norm: x + attention(LayerNorm(x)), then x + MLP(LayerNorm(x))."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.norm_attention = nn.LayerNorm(config.d_model)
        self.attention = SelfAttention(config)
        self.norm_mlp = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(nn.Linear(config.d_model, config.d_ff), nn.GELU(),
                                 nn.Linear(config.d_ff, config.d_model))
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, allowed: Tensor, rotary: tuple[Tensor, Tensor] | None,
                past: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        attended, kv = self.attention(self.norm_attention(x), allowed, rotary, past)
        x = x + self.drop(attended)
        return x + self.drop(self.mlp(self.norm_mlp(x))), kv


class TinyTransformer(nn.Module):
    """A decoder-only, pre-norm transformer (GPT-2's layout) small enough to train on a CPU.

    The output head is TIED to the token embedding by default (``tie_embeddings``): logits = hidden @ E^T, which
    halves the parameters of a small model; ``tie_embeddings=False`` gives it its own matrix.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embed = nn.Embedding(config.max_len, config.d_model) if config.positions == "learned" else None
        if config.positions == "rotary":  # not parameters, and rebuilt from the config: not in the state_dict
            cos, sin = rotary_tables(config.max_len, config.head_dim)
            self.register_buffer("rotary_cos", cos, persistent=False)
            self.register_buffer("rotary_sin", sin, persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.head = None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        for block in self.blocks:  # GPT-2: each residual branch's last layer scaled down so the sum keeps its size
            for layer in (block.attention.out, block.mlp[2]):
                nn.init.normal_(layer.weight, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def max_len(self) -> int:
        return self.config.max_len

    def forward(self, ids: Tensor, attention_mask: Tensor | None = None, past_key_values: KVCache | None = None,
                use_cache: bool = False, return_hidden: bool = False
                ) -> tuple[Tensor, KVCache | None] | tuple[Tensor, KVCache | None, Tensor]:
        """``(logits [B, L, V], cache)`` for the new tokens ``ids [B, L]``; ``attention_mask [B, past + L]`` covers the
        cached tokens too (all real when None). ``cache`` (with ``use_cache``) is the per-layer keys and values of
        every token so far, to pass back as ``past_key_values`` with the next tokens. ``return_hidden`` adds the
        final-norm hidden states ``[B, L, d_model]``."""
        batch, length = ids.shape
        past = 0 if past_key_values is None else past_key_values[0][0].shape[2]
        total = past + length
        if attention_mask is None:
            attention_mask = torch.ones(batch, total, dtype=torch.bool, device=ids.device)
        if tuple(attention_mask.shape) != (batch, total):
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}; it must cover the {past} cached "
                             f"tokens and the {length} new ones: ({batch}, {total})")
        if total > self.config.max_len:
            raise ValueError(f"sequence of {total} tokens is longer than the model's max_len={self.config.max_len}")
        mask = attention_mask.bool()
        positions = positions_from_mask(mask)[:, past:]  # [B, L]

        # allowed[b, 0, i, j]: new token i (at column past + i) sees column j when j is real and not later. Every
        # token also sees itself, so that a padding query never has every key masked (which gives NaN); a real
        # token's own column is real, so this changes nothing for real tokens.
        columns = torch.arange(total, device=ids.device)
        rows = past + torch.arange(length, device=ids.device)
        causal = columns[None, :] <= rows[:, None]
        allowed = (mask[:, None, None, :] & causal) | (columns[None, :] == rows[:, None])

        x = self.embed(ids)
        rotary = None
        if self.position_embed is not None:
            x = x + self.position_embed(positions)
        else:
            rotary = (self.rotary_cos[positions][:, None], self.rotary_sin[positions][:, None])
        x = self.drop(x)
        cache: KVCache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, allowed, rotary, None if past_key_values is None else past_key_values[i])
            cache.append(kv)
        hidden = self.norm(x)
        logits = F.linear(hidden, self.embed.weight) if self.head is None else self.head(hidden)
        if return_hidden:
            return logits, (cache if use_cache else None), hidden
        return logits, (cache if use_cache else None)

    def hidden(self, ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """The final-norm hidden states ``[B, L, d_model]`` (what a value head reads)."""
        return self(ids, attention_mask, return_hidden=True)[2]


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as error:
        raise ImportError("HFCausalLM needs Hugging Face transformers, the optional [lm] extra: "
                          "pip install 'thorndike[lm]'") from error
    return transformers


class HFCausalLM(nn.Module):
    """A Hugging Face causal LM behind :class:`TinyTransformer`'s interface (the RL trainers take either).

    Build it from a config, with random weights and nothing downloaded::

        from transformers import GPT2Config
        model = HFCausalLM.from_config(GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=64,
                                                  vocab_size=tok.vocab_size))

    Position ids come from the attention mask, as in :class:`TinyTransformer`. The cache is whatever the Hugging Face
    model returns (a ``transformers`` Cache object, updated in place by the next call): pass it back untouched.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        # transformers 5 renamed the cache argument (and output) from past_key_values to cache
        self._cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    @classmethod
    def from_config(cls, config: Any) -> HFCausalLM:
        """A randomly initialised causal LM of ``config`` (a ``transformers`` PretrainedConfig)."""
        return cls(_transformers().AutoModelForCausalLM.from_config(config))

    @property
    def max_len(self) -> int | None:
        return getattr(self.model.config, "max_position_embeddings", None)

    def forward(self, ids: Tensor, attention_mask: Tensor | None = None, past_key_values: Any = None,
                use_cache: bool = False, return_hidden: bool = False) -> tuple[Any, ...]:
        """As :meth:`TinyTransformer.forward`; ``hidden`` is the last hidden state (after the final norm)."""
        batch, length = ids.shape
        if attention_mask is None:
            if past_key_values is not None:
                raise ValueError("HFCausalLM: with past_key_values, pass the attention_mask of every token so far")
            attention_mask = torch.ones(batch, length, dtype=torch.bool, device=ids.device)
        past = attention_mask.shape[1] - length
        if past < 0 or (past > 0) != (past_key_values is not None):
            raise ValueError(f"attention_mask has {attention_mask.shape[1]} columns for {length} new tokens; it must "
                             "cover the cached tokens (when past_key_values is given) and the new ones")
        cache_argument = {} if past_key_values is None else {self._cache_name: past_key_values}
        out = self.model(input_ids=ids, attention_mask=attention_mask.long(),
                         position_ids=positions_from_mask(attention_mask)[:, past:], use_cache=use_cache,
                         output_hidden_states=return_hidden, return_dict=True, **cache_argument)
        cache = getattr(out, self._cache_name) if use_cache else None
        if return_hidden:
            return out.logits, cache, out.hidden_states[-1]
        return out.logits, cache

    def hidden(self, ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self(ids, attention_mask, return_hidden=True)[2]


def token_logprobs(logits: Tensor, ids: Tensor, completion_mask: Tensor,
                   with_entropy: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """``log pi(ids[:, t+1] | ids[:, :t+1])`` for t < L-1, ``[B, L-1]``, from the logits ``[B, L, V]`` of one forward
    pass; exactly 0 (and no gradient) where ``completion_mask[:, 1:]`` is False (prompt and padding). With
    ``with_entropy`` also the entropy of each of those next-token distributions, masked the same way."""
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    taken = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    keep = completion_mask[:, 1:].bool()
    # where, not a product: a masked position contributes an exact 0 and a zero gradient even if its logits are inf
    taken = torch.where(keep, taken, torch.zeros_like(taken))
    if not with_entropy:
        return taken
    entropy = -(logp.exp() * logp).sum(-1)
    return taken, torch.where(keep, entropy, torch.zeros_like(entropy))


def sequence_logprobs(model: nn.Module, ids: Tensor, attention_mask: Tensor, completion_mask: Tensor,
                      with_entropy: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Per-token log-probabilities ``[B, L-1]`` of the completion tokens of ``ids`` under ``model`` (one forward
    pass; see :func:`token_logprobs`). A sequence's log-probability is the sum over its row."""
    logits = model(ids, attention_mask)[0]
    return token_logprobs(logits, ids, completion_mask, with_entropy)


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None, greedy: bool = False,
                generator: torch.Generator | None = None) -> Tensor:
    """One token per row from ``logits [B, V]``: the argmax when ``greedy`` or ``temperature == 0``, else a draw from
    softmax(logits / temperature) restricted to the ``top_k`` most likely tokens (all when None)."""
    logits = logits.float()
    if greedy or temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate(model: nn.Module, ids: Tensor, attention_mask: Tensor, max_new_tokens: int, *, eos_id: int,
             pad_id: int, temperature: float = 1.0, top_k: int | None = None, greedy: bool = False,
             generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Sample up to ``max_new_tokens`` after the LEFT-padded prompts ``ids, attention_mask [B, P]`` (from
    ``CharTokenizer.batch``), one token per step for every row, reusing the KV cache.

    Returns ``(ids [B, P+T], attention_mask [B, P+T], completion_mask [B, P+T])``, T <= max_new_tokens: a row stops
    after its EOS (kept, and in the completion mask, so its probability is learned); its later columns are PAD and
    masked out of both masks. Draws are from the model's own distribution over the whole vocabulary, so a sampled PAD
    or BOS is a real token (True in the masks): the masks, not the ids, say what is real. The loop ends early once
    every row has stopped (one host check per token). Draws use ``generator`` (on the model's device), so a seeded
    generator reproduces the completions. No gradient is kept; the model's train/eval mode is left as it is (dropout
    applies in train mode).
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be 0 or more, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be 0 (greedy) or more, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be None (all tokens) or at least 1, got {top_k}")
    limit = getattr(model, "max_len", None)
    if limit is not None and ids.shape[1] + max_new_tokens > limit:
        raise ValueError(f"prompts of {ids.shape[1]} tokens and max_new_tokens={max_new_tokens} exceed the model's "
                         f"max_len={limit}")
    mask = attention_mask.bool()
    completion = torch.zeros_like(mask)
    finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    if max_new_tokens == 0:
        return ids, mask, completion
    logits, cache = model(ids, mask, use_cache=True)
    new_ids, new_real = [], []
    for step in range(max_new_tokens):
        token = sample_next(logits[:, -1], temperature, top_k, greedy, generator)
        real = ~finished
        token = torch.where(real, token, torch.full_like(token, pad_id))
        new_ids.append(token)
        new_real.append(real)
        finished = finished | (token == eos_id)
        mask = torch.cat((mask, real[:, None]), dim=1)
        if step == max_new_tokens - 1 or bool(finished.all()):
            break
        logits, cache = model(token[:, None], mask, past_key_values=cache, use_cache=True)
    generated = torch.stack(new_real, dim=1)
    return (torch.cat((ids, torch.stack(new_ids, dim=1)), dim=1), mask,
            torch.cat((completion, generated), dim=1))


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters (each tied tensor once), or only those with ``requires_grad``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
