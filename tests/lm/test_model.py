"""The language model of thorndike.lm: the character tokenizer, the tiny transformer (causal, positions from the mask so
left padding changes nothing, a KV cache equal to the full pass), per-token log-probabilities, batched sampling, and
the Hugging Face adapter behind the same interface."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from thorndike.config import ConfigError
from thorndike.lm import (
    CharTokenizer,
    HFCausalLM,
    TinyTransformer,
    TransformerConfig,
    count_parameters,
    generate,
    positions_from_mask,
    sequence_logprobs,
    token_logprobs,
)

ALPHABET = "0123456789+-*=()[],<>? "
PROMPTS = ["12+7=", "3=", "(4*5)-10=", "9"]
POSITIONS = ["rotary", "learned"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tok() -> CharTokenizer:
    return CharTokenizer(ALPHABET)


def tiny(tok: CharTokenizer, positions: str = "rotary", seed: int = 0, **overrides) -> TinyTransformer:
    torch.manual_seed(seed)
    config = dict(vocab_size=tok.vocab_size, d_model=32, n_layers=2, n_heads=4, max_len=48, positions=positions)
    return TinyTransformer(TransformerConfig(**(config | overrides))).eval()


def hf_model(tok: CharTokenizer) -> HFCausalLM:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=48, vocab_size=tok.vocab_size,
                                     bos_token_id=tok.bos_id, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)
    return HFCausalLM.from_config(config).eval()  # from_config leaves it in train mode, with GPT-2's dropout on


def models(tok: CharTokenizer) -> list[torch.nn.Module]:
    return [tiny(tok, "rotary"), tiny(tok, "learned", tie_embeddings=False)]


# -- tokenizer ---------------------------------------------------------------------------------------------------------


def test_tokenizer_round_trip_specials_and_state(tok: CharTokenizer) -> None:
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2) and tok.vocab_size == 3 + len(ALPHABET)
    text = "[3, 1] <? (12*4)-7=41"
    ids = tok.encode(text, bos=True, eos=True)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id and len(ids) == len(text) + 2
    assert tok.encode("10") == [3 + ALPHABET.index("1"), 3 + ALPHABET.index("0")]
    assert tok.decode(ids) == text
    # decoding stops at the first EOS and skips PAD and BOS wherever they are
    assert tok.decode([tok.pad_id, tok.bos_id, *tok.encode("1+1"), tok.pad_id, *tok.encode("=2"), tok.eos_id,
                       *tok.encode("99")]) == "1+1=2"
    assert tok.decode(torch.tensor(tok.encode("42"))) == "42"
    rebuilt = CharTokenizer.from_state_dict(tok.state_dict())
    assert rebuilt.alphabet == ALPHABET and rebuilt.encode(text) == tok.encode(text)
    with pytest.raises(ValueError, match="repeats"):
        CharTokenizer("0120")


def test_batch_is_left_padded(tok: CharTokenizer) -> None:
    ids, mask = tok.batch(["12", "3", "456"])
    one, two, three, four, five, six = (tok.encode(c)[0] for c in "123456")
    pad, bos = tok.pad_id, tok.bos_id
    assert ids.tolist() == [[pad, bos, one, two], [pad, pad, bos, three], [bos, four, five, six]]
    assert mask.tolist() == [[False, True, True, True], [False, False, True, True], [True, True, True, True]]
    assert ids.dtype == torch.long and mask.dtype == torch.bool
    assert tok.decode_batch(ids) == ["12", "3", "456"]
    ids, mask = tok.batch(["7", "78"], bos=False)
    assert ids.tolist() == [[pad, tok.encode("7")[0]], tok.encode("78")]
    assert mask.tolist() == [[False, True], [True, True]]


def test_an_unknown_character_names_itself_and_the_alphabet(tok: CharTokenizer) -> None:
    with pytest.raises(ValueError, match=r"character 'x' .* alphabet '0123456789\+"):
        tok.encode("1+x")
    with pytest.raises(ValueError, match="'a'"):
        tok.batch(["12", "a"])


# -- config and shape --------------------------------------------------------------------------------------------------


def test_config_validation_names_the_field() -> None:
    assert TransformerConfig(vocab_size=10, d_model=64).d_ff == 256
    with pytest.raises(ConfigError, match="d_model=30.*divisible by n_heads=4"):
        TransformerConfig(vocab_size=10, d_model=30, n_heads=4)
    with pytest.raises(ConfigError, match="positions='alibi'"):
        TransformerConfig(vocab_size=10, positions="alibi")
    with pytest.raises(ConfigError, match="even"):  # rotary rotates pairs: head_dim 3 cannot
        TransformerConfig(vocab_size=10, d_model=12, n_heads=4)
    TransformerConfig(vocab_size=10, d_model=12, n_heads=4, positions="learned")  # fine without rotation
    with pytest.raises(ConfigError, match="vocab_size"):
        TransformerConfig(vocab_size=0)
    with pytest.raises(ConfigError, match="dropout"):
        TransformerConfig(vocab_size=10, dropout=1.0)


def test_count_parameters_by_hand(tok: CharTokenizer) -> None:
    v, d, ff, n, max_len = tok.vocab_size, 32, 128, 2, 48
    block = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * ff + ff) + (ff * d + d)
    tied_rotary = v * d + n * block + 2 * d
    assert count_parameters(tiny(tok, "rotary")) == tied_rotary
    assert count_parameters(tiny(tok, "learned", tie_embeddings=False)) == tied_rotary + max_len * d + d * v
    frozen = tiny(tok)
    frozen.embed.weight.requires_grad_(False)
    assert count_parameters(frozen, trainable_only=True) == tied_rotary - v * d


def test_hidden_is_the_final_norm_that_the_tied_head_reads(tok: CharTokenizer) -> None:
    model = tiny(tok)
    ids, mask = tok.batch(PROMPTS)
    logits, cache, hidden = model(ids, mask, return_hidden=True)
    assert logits.shape == (*ids.shape, tok.vocab_size) and hidden.shape == (*ids.shape, 32) and cache is None
    torch.testing.assert_close(model.hidden(ids, mask), hidden, rtol=0, atol=0)
    torch.testing.assert_close(hidden @ model.embed.weight.T, logits)
    with pytest.raises(ValueError, match="max_len=48"):
        model(torch.zeros(1, 49, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask"):
        model(ids, mask[:, 1:])


def test_positions_count_real_tokens_before() -> None:
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 0, 1]], dtype=torch.bool)
    assert positions_from_mask(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4], [0, 0, 1, 1, 2]]


# -- causality, padding, cache -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("positions", POSITIONS)
def test_a_later_token_does_not_change_earlier_logits(tok: CharTokenizer, positions: str) -> None:
    model = tiny(tok, positions)
    ids = torch.tensor([tok.encode("12+34=46", bos=True)])
    changed = ids.clone()
    changed[0, 5] = tok.encode("9")[0]
    before, after = model(ids)[0], model(changed)[0]
    torch.testing.assert_close(after[:, :5], before[:, :5], rtol=0, atol=1e-6)
    assert (after[:, 5:] - before[:, 5:]).abs().amax(-1).min() > 1e-4  # the change does reach every later position


def padded_and_alone(model: torch.nn.Module, tok: CharTokenizer) -> None:
    ids, mask = tok.batch(PROMPTS)
    batched = model(ids, mask)[0]
    for row, prompt in enumerate(PROMPTS):
        alone = model(torch.tensor([tok.encode(prompt, bos=True)]))[0][0]
        torch.testing.assert_close(batched[row, mask[row]], alone, rtol=0, atol=1e-5)


@pytest.mark.parametrize("positions", POSITIONS)
def test_left_padding_leaves_the_real_tokens_logits_unchanged(tok: CharTokenizer, positions: str) -> None:
    padded_and_alone(tiny(tok, positions), tok)


def continued_batch(tok: CharTokenizer) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The left-padded prompts followed by 6 tokens per row; row 1 has finished after 2 (PAD, masked, after)."""
    ids, mask = tok.batch(PROMPTS)
    prompt = ids.shape[1]
    more = torch.tensor([tok.encode(s) for s in ["1 2 3 ", "4=1111", "[5,6])", "<>?789"]])
    more_mask = torch.ones_like(more, dtype=torch.bool)
    more[1, 2:], more_mask[1, 2:] = tok.pad_id, False
    return torch.cat((ids, more), 1), torch.cat((mask, more_mask), 1), prompt


def cache_matches_full_pass(model: torch.nn.Module, tok: CharTokenizer) -> None:
    ids, mask, prompt = continued_batch(tok)
    full, _ = model(ids, mask)
    logits, cache = model(ids[:, :prompt], mask[:, :prompt], use_cache=True)
    steps = [logits]
    for t in range(prompt, ids.shape[1]):
        logits, cache = model(ids[:, t:t + 1], mask[:, :t + 1], past_key_values=cache, use_cache=True)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=0, atol=1e-5)
    completion = mask.clone()
    completion[:, :prompt] = False
    expected = token_logprobs(full, ids, completion)
    torch.testing.assert_close(token_logprobs(torch.cat(steps, 1), ids, completion), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("positions", POSITIONS)
def test_incremental_decoding_with_the_cache_equals_the_full_pass(tok: CharTokenizer, positions: str) -> None:
    cache_matches_full_pass(tiny(tok, positions), tok)


# -- log-probabilities -------------------------------------------------------------------------------------------------


def test_sequence_logprobs_equal_a_hand_loop_over_prefixes(tok: CharTokenizer) -> None:
    model = tiny(tok)
    ids, mask, prompt = continued_batch(tok)
    completion = mask.clone()
    completion[:, :prompt] = False
    got, entropy = sequence_logprobs(model, ids, mask, completion, with_entropy=True)
    assert got.shape == entropy.shape == (ids.shape[0], ids.shape[1] - 1)
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1] - 1):
            if not completion[b, t + 1]:
                assert got[b, t].item() == 0.0 and entropy[b, t].item() == 0.0
                continue
            # the distribution of token t+1 from a forward pass that sees only tokens 0..t
            last = model(ids[b:b + 1, :t + 1], mask[b:b + 1, :t + 1])[0][0, -1]
            log_p = F.log_softmax(last, -1)
            assert got[b, t].item() == pytest.approx(log_p[ids[b, t + 1]].item(), abs=1e-5)
            assert entropy[b, t].item() == pytest.approx(-(log_p.exp() * log_p).sum().item(), abs=1e-5)
    assert (got < 0).sum() == completion[:, 1:].sum() > 0  # every completion token scored, each below probability 1


def test_masked_positions_give_exactly_zero_and_no_gradient(tok: CharTokenizer) -> None:
    ids, mask, prompt = continued_batch(tok)
    completion = mask.clone()
    completion[:, :prompt] = False
    logits = torch.randn(*ids.shape, tok.vocab_size, requires_grad=True)
    with torch.no_grad():
        logits[1, -1, 5] = float("inf")  # even a non-finite logit at a masked position leaves the rest clean
    logp, entropy = token_logprobs(logits, ids, completion, with_entropy=True)
    (logp.sum() + entropy.sum()).backward()
    scored = completion[:, 1:]
    assert torch.all(logp[~scored] == 0) and torch.all(entropy[~scored] == 0)
    per_position = logits.grad[:, :-1].abs().sum(-1)
    assert torch.all(per_position[~scored] == 0) and torch.all(per_position[scored] > 0)
    assert torch.all(logits.grad[:, -1] == 0)  # the last position predicts nothing
    assert torch.isfinite(logits.grad).all()


# -- generation --------------------------------------------------------------------------------------------------------


def sample(model: torch.nn.Module, tok: CharTokenizer, seed: int, **options) -> tuple[torch.Tensor, ...]:
    ids, mask = tok.batch(PROMPTS * 4)
    generator = torch.Generator().manual_seed(seed)
    return generate(model, ids, mask, 20, eos_id=tok.eos_id, pad_id=tok.pad_id, generator=generator, **options)


def test_generation_is_reproducible_and_rows_stop_at_eos(tok: CharTokenizer) -> None:
    model = tiny(tok)
    with torch.no_grad():  # a model that ends a row often: EOS's embedding points along the final norm's bias
        model.norm.bias.copy_(model.embed.weight[tok.eos_id] * 20)
    prompt_ids, prompt_mask = tok.batch(PROMPTS * 4)
    ids, mask, completion = sample(model, tok, seed=0)
    again = sample(model, tok, seed=0)
    assert all(torch.equal(a, b) for a, b in zip((ids, mask, completion), again))
    assert not torch.equal(sample(model, tok, seed=1)[0], ids)
    prompt = prompt_ids.shape[1]
    assert torch.equal(ids[:, :prompt], prompt_ids) and torch.equal(mask[:, :prompt], prompt_mask)
    assert not completion[:, :prompt].any() and torch.equal(mask[:, prompt:], completion[:, prompt:])
    stopped = 0
    for row in range(ids.shape[0]):
        new = ids[row, prompt:].tolist()
        length = new.index(tok.eos_id) + 1 if tok.eos_id in new else len(new)
        stopped += length < len(new)
        assert completion[row, prompt:].tolist() == [True] * length + [False] * (len(new) - length)
        assert new[length:] == [tok.pad_id] * (len(new) - length)
    assert 0 < stopped < ids.shape[0]


class EosAfter(torch.nn.Module):
    """A stand-in model: row b puts EOS first once it holds ``stops[b]`` real tokens, else the token ``3 + b``."""

    def __init__(self, stops: list[int], vocab_size: int, eos_id: int) -> None:
        super().__init__()
        self.stops, self.vocab_size, self.eos_id, self.calls = torch.tensor(stops), vocab_size, eos_id, 0

    def forward(self, ids, attention_mask, past_key_values=None, use_cache=False):
        self.calls += 1
        real = attention_mask.long().sum(1)
        logits = torch.zeros(ids.shape[0], ids.shape[1], self.vocab_size)
        favourite = torch.where(real >= self.stops, self.eos_id, 3 + torch.arange(ids.shape[0]))
        logits[torch.arange(ids.shape[0]), -1, favourite] = 10.0
        return logits, None


def test_generation_ends_when_every_row_has_stopped(tok: CharTokenizer) -> None:
    ids, mask = tok.batch(["1", "22", "333"])  # 2, 3 and 4 real tokens
    model = EosAfter([4, 5, 9], tok.vocab_size, tok.eos_id)
    out, out_mask, completion = generate(model, ids, mask, 30, eos_id=tok.eos_id, pad_id=tok.pad_id, greedy=True)
    # row 0: 2 of its own, then EOS; row 1: 2 then EOS; row 2: 5 then EOS -- 6 new columns, then the loop ends
    assert out.shape == (3, 4 + 6) and model.calls == 6
    assert tok.decode_batch(out) == ["1" + "0" * 2, "22" + "1" * 2, "333" + "2" * 5]
    assert completion.sum(1).tolist() == [3, 3, 6] and torch.equal(out_mask[:, 4:], completion[:, 4:])


@pytest.mark.parametrize("positions", POSITIONS)
def test_greedy_is_the_argmax_at_every_step(tok: CharTokenizer, positions: str) -> None:
    model = tiny(tok, positions)
    ids, mask, completion = sample(model, tok, seed=0, greedy=True)
    logits = model(ids, mask)[0]
    chosen = logits[:, :-1].argmax(-1)
    scored = completion[:, 1:]
    assert scored.sum() > 0 and torch.equal(ids[:, 1:][scored], chosen[scored])
    for other in (dict(temperature=0.0), dict(top_k=1)):  # the same completions
        assert torch.equal(sample(model, tok, seed=3, **other)[0], ids)


def test_top_k_draws_only_among_the_k_most_likely(tok: CharTokenizer) -> None:
    model = tiny(tok)
    ids, mask, completion = sample(model, tok, seed=0, top_k=3, temperature=2.0)
    logits = model(ids, mask)[0][:, :-1]
    rank = (logits > logits.gather(-1, ids[:, 1:, None])).sum(-1)  # how many tokens were more likely
    scored = completion[:, 1:]
    assert rank[scored].max() <= 2 and rank[scored].max() > 0  # within the top 3, and not always the first


def test_generation_refuses_to_run_past_max_len(tok: CharTokenizer) -> None:
    ids, mask = tok.batch(PROMPTS)
    with pytest.raises(ValueError, match="max_len=48"):
        generate(tiny(tok), ids, mask, 48, eos_id=tok.eos_id, pad_id=tok.pad_id)


# -- learning ----------------------------------------------------------------------------------------------------------


def test_the_model_overfits_a_few_strings(tok: CharTokenizer) -> None:
    """Gradients reach every part: 100 Adam steps fit six strings, each from its first character, almost exactly
    (from ~3.3 nats a token at the start)."""
    texts = ["12+7=19", "3*4=12", "(2+3)*2=10", "9-5=4", "[3,1]<[1,3]", "8>2?"]
    ids, mask = tok.batch(texts)
    ids = torch.cat((ids, torch.full((len(texts), 1), tok.eos_id)), 1)
    mask = torch.cat((mask, torch.ones(len(texts), 1, dtype=torch.bool)), 1)
    # scored: every token after the first character (the first one, after BOS alone, cannot be told apart)
    targets = mask & (positions_from_mask(mask) >= 2)
    model = tiny(tok).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        loss = -sequence_logprobs(model, ids, mask, targets).sum() / targets[:, 1:].sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[0] > 2.5 and losses[-1] < 0.1, (losses[0], losses[-1])
    # each string is written back from its first character alone
    first, first_mask = tok.batch([t[0] for t in texts])
    out = generate(model.eval(), first, first_mask, 12, eos_id=tok.eos_id, pad_id=tok.pad_id, greedy=True)[0]
    assert tok.decode_batch(out) == texts


# -- the Hugging Face adapter ------------------------------------------------------------------------------------------


def test_hf_adapter_pads_caches_and_scores_like_the_tiny_model(tok: CharTokenizer) -> None:
    model = hf_model(tok)
    assert model.max_len == 48
    padded_and_alone(model, tok)
    cache_matches_full_pass(model, tok)
    ids, mask = tok.batch(PROMPTS)
    logits, _, hidden = model(ids, mask, return_hidden=True)
    torch.testing.assert_close(model.hidden(ids, mask), hidden)
    torch.testing.assert_close(hidden @ model.model.get_output_embeddings().weight.T, logits)  # after the final norm
    out, out_mask, completion = sample(model, tok, seed=0, greedy=True)
    chosen = model(out, out_mask)[0][:, :-1].argmax(-1)
    assert torch.equal(out[:, 1:][completion[:, 1:]], chosen[completion[:, 1:]])
    assert torch.equal(sample(model, tok, seed=5)[0], sample(model, tok, seed=5)[0])


def test_hf_adapter_without_transformers_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'thorndike\[lm\]'"):
        HFCausalLM.from_config(object())
