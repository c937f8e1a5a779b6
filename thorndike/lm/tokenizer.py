"""A character-level tokenizer for the small synthetic tasks of RL for language models (arithmetic, sorting, ...).

One id per character of a fixed alphabet, after three special tokens: PAD (0), BOS (1), EOS (2). Prompts are batched
LEFT-padded, so that every row's last real token sits in the last column and generation appends at the right for all
rows at once; the model takes its positions from the attention mask, so the padding changes nothing it computes for
the real tokens (:mod:`thorndike.lm.model`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = ["CharTokenizer"]


class CharTokenizer:
    """Characters of ``alphabet`` to ids and back, with PAD, BOS and EOS.

    >>> tok = CharTokenizer("0123456789+=")
    >>> tok.decode(tok.encode("1+2=3", eos=True))
    '1+2=3'
    """

    PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
    SPECIALS = (PAD, BOS, EOS)

    def __init__(self, alphabet: str) -> None:
        if not isinstance(alphabet, str) or not alphabet:
            raise ValueError(f"CharTokenizer needs a non-empty alphabet string, got {alphabet!r}")
        repeated = sorted({c for c in alphabet if alphabet.count(c) > 1})
        if repeated:
            raise ValueError(f"CharTokenizer alphabet {alphabet!r} repeats the characters {repeated}")
        self.alphabet = alphabet
        self.pad_id, self.bos_id, self.eos_id = 0, 1, 2
        self._ids = {c: i + len(self.SPECIALS) for i, c in enumerate(alphabet)}
        self._chars = list(self.SPECIALS) + list(alphabet)

    @property
    def vocab_size(self) -> int:
        return len(self._chars)

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        """The ids of ``text``'s characters, with BOS before and EOS after when asked."""
        ids = [self.bos_id] if bos else []
        for c in text:
            if c not in self._ids:
                raise ValueError(f"character {c!r} (in {text!r}) is not in the tokenizer's alphabet {self.alphabet!r}")
            ids.append(self._ids[c])
        if eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: Iterable[int] | Tensor) -> str:
        """The text of ``ids`` up to the first EOS (excluded); PAD and BOS are skipped."""
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        out = []
        for i in ids:
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} is outside the vocabulary (0 to {self.vocab_size - 1})")
            out.append(self._chars[i])
        return "".join(out)

    def decode_batch(self, ids: Tensor) -> list[str]:
        """:meth:`decode` of each row of ``[B, L]`` ids."""
        return [self.decode(row) for row in ids.tolist()]

    def batch(self, prompts: list[str], bos: bool = True,
              device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """``(ids [B, L], attention_mask [B, L])``: the prompts encoded (BOS first unless ``bos=False``), LEFT-padded
        with PAD to the longest; the mask is True on real tokens."""
        if not prompts:
            raise ValueError("CharTokenizer.batch needs at least one prompt")
        encoded = [self.encode(p, bos=bos) for p in prompts]
        length = max(len(e) for e in encoded)
        if length == 0:
            raise ValueError("CharTokenizer.batch: every prompt is empty and bos=False, so there is nothing to batch")
        ids = torch.full((len(encoded), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(encoded), length), dtype=torch.bool)
        for row, e in enumerate(encoded):
            if e:  # an empty row stays all PAD (its mask all False)
                ids[row, length - len(e):] = torch.tensor(e, dtype=torch.long)
                mask[row, length - len(e):] = True
        return ids.to(device), mask.to(device)

    def state_dict(self) -> dict[str, Any]:
        """What :meth:`from_state_dict` needs to rebuild this tokenizer (goes into a checkpoint)."""
        return {"kind": "char", "alphabet": self.alphabet}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> CharTokenizer:
        if state.get("kind") != "char":
            raise ValueError(f"not a CharTokenizer state: {state!r}")
        return cls(state["alphabet"])

    def __repr__(self) -> str:
        return f"CharTokenizer(alphabet={self.alphabet!r}, vocab_size={self.vocab_size})"
