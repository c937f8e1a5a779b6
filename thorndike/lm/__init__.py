"""RL for language models (issue #18): a character tokenizer, a tiny decoder-only transformer (or a Hugging Face
causal LM behind the same interface) and the functions the RL trainers call on it. ``transformers`` is optional (the
``[lm]`` extra) and imported only when :class:`HFCausalLM` is built."""

from thorndike.lm.model import (
    HFCausalLM,
    TinyTransformer,
    TransformerConfig,
    count_parameters,
    generate,
    positions_from_mask,
    sequence_logprobs,
    token_logprobs,
)
from thorndike.lm.tokenizer import CharTokenizer

__all__ = [
    "CharTokenizer",
    "HFCausalLM",
    "TinyTransformer",
    "TransformerConfig",
    "count_parameters",
    "generate",
    "positions_from_mask",
    "sequence_logprobs",
    "token_logprobs",
]
