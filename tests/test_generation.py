"""Generation: DynamicCache, HF logits processors, the decode loop, and a real tiny MoE model."""
from types import SimpleNamespace

import numpy as np
import pytest

import genesis
from genesis.models.transformers.generation import (
    DynamicCache, GenerationMixin, LogitsProcessorList, RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

NEG_INF = -np.inf


def t(x, dtype=np.float32):
    """A genesis tensor from nested lists."""
    return genesis.tensor(np.asarray(x, dtype=dtype))


# ----------------------------------------------------------------------------- DynamicCache


class TestDynamicCache:
    def test_update_concatenates_and_grows(self):
        rng = np.random.default_rng(0)
        cache = DynamicCache()
        chunks = [rng.standard_normal((2, 3, n, 4)).astype(np.float32) for n in (5, 1, 1, 20, 1)]
        for layer in range(2):
            for c in chunks[:1]:
                cache.update(t(c), t(c * 2), layer)
        for c in chunks[1:]:
            for layer in range(2):
                k, v = cache.update(t(c), t(c * 2), layer)
        full = np.concatenate(chunks, axis=2)
        np.testing.assert_array_equal(k.numpy(), full)
        np.testing.assert_array_equal(v.numpy(), 2 * full)
        assert cache.get_seq_length() == 28 and cache.get_seq_length(1) == 28
        assert len(cache) == 2
        assert cache.get_seq_length(5) == 0

    def test_returned_views_are_stable_after_later_appends(self):
        cache = DynamicCache()
        a = np.ones((1, 1, 3, 2), np.float32)
        k1, _ = cache.update(t(a), t(a), 0)
        cache.update(t(a * 5), t(a * 5), 0)
        np.testing.assert_array_equal(k1.numpy(), a)

    def test_crop_reorder_and_legacy(self):
        cache = DynamicCache()
        x = np.arange(2 * 1 * 6 * 2, dtype=np.float32).reshape(2, 1, 6, 2)
        cache.update(t(x), t(-x), 0)
        cache.crop(4)
        assert cache.get_seq_length() == 4
        cache.crop(-1)
        assert cache.get_seq_length() == 3
        cache.reorder_cache(genesis.tensor([1, 0]))
        k, v = cache[0]
        np.testing.assert_array_equal(k.numpy(), x[::-1, :, :3])
        legacy = cache.to_legacy_cache()
        again = DynamicCache.from_legacy_cache(legacy)
        np.testing.assert_array_equal(again[0][1].numpy(), -x[::-1, :, :3])

    def test_errors(self):
        cache = DynamicCache()
        a = t(np.zeros((1, 1, 2, 2)))
        with pytest.raises(IndexError, match="layer 1"):
            cache.update(a, a, 1)
        with pytest.raises(IndexError, match="not cached"):
            cache[0]
        with pytest.raises(ValueError, match="disagree"):
            cache.update(a, t(np.zeros((1, 2, 2, 2))), 0)

    def test_differentiable_when_inputs_require_grad(self):
        cache = DynamicCache()
        a = t(np.ones((1, 1, 2, 2))).requires_grad_()
        b = t(np.full((1, 1, 1, 2), 3.0)).requires_grad_()
        cache.update(a, a, 0)
        k, v = cache.update(b, b, 0)
        (k * 2 + v).sum().backward()
        np.testing.assert_array_equal(a.grad.numpy(), np.full((1, 1, 2, 2), 3.0))
        np.testing.assert_array_equal(b.grad.numpy(), np.full((1, 1, 1, 2), 3.0))


# ----------------------------------------------------------------------------- processors


class TestLogitsProcessors:
    def test_repetition_penalty_matches_hand_computation(self):
        scores = t([[2.0, -1.0, 0.5, -3.0], [1.0, 1.0, -2.0, 4.0]])
        ids = genesis.tensor([[0, 1, 1], [3, 2, 2]])
        out = RepetitionPenaltyLogitsProcessor(2.0)(ids, scores).numpy()
        np.testing.assert_allclose(out, [[1.0, -2.0, 0.5, -3.0], [1.0, 1.0, -4.0, 2.0]])

    def test_temperature(self):
        out = TemperatureLogitsWarper(0.5)(None, t([[1.0, -2.0]])).numpy()
        np.testing.assert_allclose(out, [[2.0, -4.0]])
        with pytest.raises(ValueError, match="temperature"):
            TemperatureLogitsWarper(0.0)

    def test_top_k_keeps_ties_at_threshold(self):
        scores = t([[1.0, 3.0, 2.0, 2.0, 0.0], [5.0, 4.0, 3.0, 2.0, 1.0]])
        out = TopKLogitsWarper(2)(None, scores).numpy()
        np.testing.assert_array_equal(out, [[NEG_INF, 3.0, 2.0, 2.0, NEG_INF],
                                            [5.0, 4.0, NEG_INF, NEG_INF, NEG_INF]])
        np.testing.assert_array_equal(TopKLogitsWarper(50)(None, scores).numpy(), scores.numpy())
        with pytest.raises(ValueError, match="top_k"):
            TopKLogitsWarper(0)

    def test_top_p_hf_definition(self):
        probs = np.array([[0.5, 0.3, 0.15, 0.05], [0.25, 0.25, 0.25, 0.25]])
        scores = t(np.log(probs))
        out = TopPLogitsWarper(0.85)(None, scores).numpy()
        # Row 0 ascending cumsum: .05, .20, .50, 1.0; removed where <= 0.15 -> id 3 only.
        assert np.isneginf(out[0, 3]) and np.isfinite(out[0, :3]).all()
        # Row 1: cumsum .25 .5 .75 1.0; <= 0.15 removes nothing.
        assert np.isfinite(out[1]).all()
        tiny = TopPLogitsWarper(0.0)(None, scores).numpy()
        assert np.isfinite(tiny).sum(axis=1).tolist() == [1, 1]
        assert np.isfinite(tiny[0, 0])

    def test_list_applies_in_order(self):
        procs = LogitsProcessorList([TemperatureLogitsWarper(2.0), TopKLogitsWarper(1)])
        out = procs(None, t([[4.0, 2.0]])).numpy()
        np.testing.assert_array_equal(out, [[2.0, NEG_INF]])

    def test_generate_builds_hf_order(self):
        procs = GenerationMixin()._get_logits_processor(True, 0.7, 10, 0.9, 1.3)
        assert [type(p) for p in procs] == [RepetitionPenaltyLogitsProcessor,
                                            TemperatureLogitsWarper, TopKLogitsWarper,
                                            TopPLogitsWarper]
        greedy = GenerationMixin()._get_logits_processor(False, 0.7, 10, 0.9, 1.3)
        assert [type(p) for p in greedy] == [RepetitionPenaltyLogitsProcessor]


# ----------------------------------------------------------------------------- decode loop


class CountingLM(GenerationMixin):
    """A fake LM whose next token is (last token + 1) % V, with scores fixed by ``bias``."""

    def __init__(self, vocab=8, eos=None, bias=None):
        self.config = SimpleNamespace(eos_token_id=eos, pad_token_id=None)
        self.vocab = vocab
        self.bias = np.zeros(vocab, np.float32) if bias is None else np.asarray(bias, np.float32)
        self.fed = []

    def __call__(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None,
                 use_cache=False, return_dict=None, logits_to_keep=0):
        ids = input_ids.numpy()
        self.fed.append((ids.copy(), position_ids.numpy().copy(), attention_mask.numpy().copy()))
        if past_key_values is not None:
            kv = t(np.zeros((ids.shape[0], 1, ids.shape[1], 1)))
            past_key_values.update(kv, kv, 0)
        logits = np.tile(self.bias, ids.shape + (1,))
        nxt = (ids + 1) % self.vocab
        np.put_along_axis(logits, nxt[..., None], 10.0, axis=-1)
        return SimpleNamespace(logits=t(logits), past_key_values=past_key_values)


class TestDecodeLoop:
    def test_greedy_returns_prompt_plus_new_tokens(self):
        lm = CountingLM()
        out = lm.generate(genesis.tensor([[1, 2], [5, 6]]), max_new_tokens=4)
        assert out.dtype == genesis.int64
        assert out.tolist() == [[1, 2, 3, 4, 5, 6], [5, 6, 7, 0, 1, 2]]

    def test_cache_feeds_only_new_tokens_with_hf_positions(self):
        lm = CountingLM()
        ids = genesis.tensor([[0, 0, 3], [1, 2, 3]])
        mask = genesis.tensor([[0, 1, 1], [1, 1, 1]])
        lm.generate(ids, max_new_tokens=3, attention_mask=mask, pad_token_id=0)
        shapes = [fed[0].shape for fed in lm.fed]
        assert shapes == [(2, 3), (2, 1), (2, 1)]
        assert lm.fed[0][1].tolist() == [[1, 0, 1], [0, 1, 2]]
        assert lm.fed[1][1].tolist() == [[2], [3]]
        assert lm.fed[2][2].tolist() == [[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]]

    def test_no_cache_feeds_everything(self):
        lm = CountingLM()
        out = lm.generate(genesis.tensor([[1, 2]]), max_new_tokens=3, use_cache=False)
        assert [fed[0].shape[1] for fed in lm.fed] == [2, 3, 4]
        assert out.tolist() == [[1, 2, 3, 4, 5]]

    def test_eos_stops_rows_and_pads(self):
        lm = CountingLM(eos=4)
        out = lm.generate(genesis.tensor([[2], [0]]), max_new_tokens=6, pad_token_id=7)
        # Row 0 hits eos 4 after two tokens, then gets pad 7; generation stops when row 1 hits 4.
        assert out.tolist() == [[2, 3, 4, 7, 7], [0, 1, 2, 3, 4]]

    def test_eos_list_and_default_pad_is_eos(self):
        lm = CountingLM()
        out = lm.generate(genesis.tensor([[2], [4]]), max_new_tokens=5, eos_token_id=[3, 6])
        assert out.tolist() == [[2, 3, 3], [4, 5, 6]]
        assert len(lm.fed) == 2

    def test_pad_inferred_mask_when_none_given(self):
        lm = CountingLM(eos=7)
        lm.generate(genesis.tensor([[0, 0, 3]]), max_new_tokens=1, pad_token_id=0)
        assert lm.fed[0][2].tolist() == [[0, 0, 1]]

    def test_repetition_penalty_changes_greedy_choice(self):
        bias = [0, 0, 0, 0, 0, 0, 0, 9.0]
        lm = CountingLM(bias=bias)
        # Next token 3 scores 10 vs token 7's 9; penalty 2 on 3 (already present) -> 5 < 9.
        out = lm.generate(genesis.tensor([[3, 2]]), max_new_tokens=1, repetition_penalty=2.0)
        assert out.tolist() == [[3, 2, 7]]

    def test_sampling_is_seeded_and_follows_probabilities(self):
        bias = np.log(np.array([0.6, 0.3, 0.1, 1e-9, 1e-9, 1e-9, 1e-9, 1e-9]))
        lm2 = _FixedLM(bias)
        prompt = genesis.zeros((4000, 1), dtype=genesis.int64)
        genesis.manual_seed(123)
        a = lm2.generate(prompt, max_new_tokens=1, do_sample=True, top_k=0)
        genesis.manual_seed(123)
        b = lm2.generate(prompt, max_new_tokens=1, do_sample=True, top_k=0)
        assert a.tolist() == b.tolist()
        freq = np.bincount(a.numpy()[:, 1], minlength=8) / 4000
        np.testing.assert_allclose(freq[:3], [0.6, 0.3, 0.1], atol=0.03)
        g = genesis.Generator().manual_seed(5)
        c = lm2.generate(prompt[:50], max_new_tokens=3, do_sample=True, generator=g)
        g.manual_seed(5)
        d = lm2.generate(prompt[:50], max_new_tokens=3, do_sample=True, generator=g)
        assert c.tolist() == d.tolist()

    def test_top_k_one_and_temperature_zero_are_greedy(self):
        bias = np.log(np.array([0.4, 0.35, 0.25, 1e-9, 1e-9, 1e-9, 1e-9, 1e-9]))
        lm = _FixedLM(bias)
        prompt = genesis.zeros((64, 1), dtype=genesis.int64)
        k1 = lm.generate(prompt, max_new_tokens=2, do_sample=True, top_k=1)
        t0 = lm.generate(prompt, max_new_tokens=2, do_sample=True, temperature=0)
        greedy = lm.generate(prompt, max_new_tokens=2)
        assert k1.tolist() == greedy.tolist() == t0.tolist()
        assert set(greedy.numpy()[:, 1:].ravel().tolist()) == {0}

    def test_top_p_restricts_support(self):
        bias = np.log(np.array([0.5, 0.3, 0.15, 0.05, 1e-9, 1e-9, 1e-9, 1e-9]))
        lm = _FixedLM(bias)
        genesis.manual_seed(0)
        out = lm.generate(genesis.zeros((2000, 1), dtype=genesis.int64), max_new_tokens=1,
                          do_sample=True, top_p=0.75, top_k=0)
        assert set(out.numpy()[:, 1].tolist()) == {0, 1}

    def test_streamer_protocols(self):
        seen = []
        lm = CountingLM()
        lm.generate(genesis.tensor([[1]]), max_new_tokens=2, streamer=lambda x: seen.append(
            x.tolist()))
        assert seen == [[2], [3]]

        class Streamer:
            def __init__(self):
                self.calls = []

            def put(self, value):
                self.calls.append(value.tolist())

            def end(self):
                self.calls.append("end")

        s = Streamer()
        CountingLM().generate(genesis.tensor([[1]]), max_new_tokens=2, streamer=s)
        assert s.calls == [[[1]], [2], [3], "end"]

    def test_bad_inputs(self):
        lm = CountingLM()
        with pytest.raises(ValueError, match="batch, length"):
            lm.generate(genesis.tensor([1, 2]))
        with pytest.raises(TypeError, match="integer"):
            lm.generate(genesis.tensor([[1.0]]))
        with pytest.raises(ValueError, match="attention_mask shape"):
            lm.generate(genesis.tensor([[1, 2]]), attention_mask=genesis.tensor([[1]]))
        with pytest.raises(ValueError, match="max_new_tokens"):
            lm.generate(genesis.tensor([[1]]), max_new_tokens=-1)
        with pytest.warns(UserWarning, match="do_sample=False"):
            lm.generate(genesis.tensor([[1]]), max_new_tokens=1, temperature=0.5)


class _FixedLM(GenerationMixin):
    """A fake LM whose next-token scores are always ``bias``."""

    def __init__(self, bias):
        self.config = SimpleNamespace(eos_token_id=None, pad_token_id=None)
        self.bias = np.asarray(bias, np.float32)

    def __call__(self, input_ids, **kwargs):
        ids = input_ids.numpy()
        return SimpleNamespace(logits=t(np.tile(self.bias, ids.shape + (1,))),
                               past_key_values=kwargs.get("past_key_values"))


# ----------------------------------------------------------------------------- real tiny models


def tiny_model(seed=0, **extra):
    """A small random MoE LM with well-separated logits (initializer_range 0.2)."""
    from genesis.models.transformers import MoEConfig, MoEForCausalLM
    genesis.manual_seed(seed)
    fields = dict(vocab_size=50, hidden_size=32, intermediate_size=48, moe_intermediate_size=24,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=128,
                  initializer_range=0.2)
    fields.update(extra)
    return MoEForCausalLM(MoEConfig(**fields)).eval()


MODEL_KINDS = {
    "mixtral_style": {},
    "deepseek_style": dict(num_shared_experts=1, first_moe_layer=1, norm_topk_prob=False),
    "dense": dict(num_local_experts=0),
}


class TestTinyModelGeneration:
    @pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
    def test_cached_equals_uncached(self, kind):
        model = tiny_model(**MODEL_KINDS[kind])
        ids = genesis.tensor(np.random.default_rng(0).integers(0, 50, (3, 6)))
        cached = model.generate(ids, max_new_tokens=12)
        uncached = model.generate(ids, max_new_tokens=12, use_cache=False)
        assert cached.shape == (3, 18)
        assert cached.tolist() == uncached.tolist()
        genesis.manual_seed(7)
        sampled = model.generate(ids, max_new_tokens=8, do_sample=True, top_k=10)
        genesis.manual_seed(7)
        sampled_nc = model.generate(ids, max_new_tokens=8, do_sample=True, top_k=10,
                                    use_cache=False)
        assert sampled.tolist() == sampled_nc.tolist()

    def test_cache_logits_match_full_forward(self):
        model = tiny_model()
        ids = genesis.tensor(np.random.default_rng(1).integers(0, 50, (2, 9)))
        with genesis.no_grad():
            full = model(ids).numpy()
            out = model(ids[:, :6], use_cache=True)
            steps = [out.logits.numpy()]
            for i in range(6, 9):
                out = model(ids[:, i:i + 1], past_key_values=out.past_key_values, use_cache=True)
                steps.append(out.logits.numpy())
        np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5, rtol=0)

    def test_left_padded_batch_equals_each_row_alone(self):
        model = tiny_model(seed=3)
        rng = np.random.default_rng(2)
        prompts = [rng.integers(1, 50, n) for n in (3, 7, 5)]
        width = max(len(p) for p in prompts)
        ids = np.zeros((3, width), np.int64)
        mask = np.zeros((3, width), np.int64)
        for row, p in enumerate(prompts):
            ids[row, width - len(p):] = p
            mask[row, width - len(p):] = 1
        batched = model.generate(genesis.tensor(ids), attention_mask=genesis.tensor(mask),
                                 max_new_tokens=8, pad_token_id=0).numpy()
        for row, p in enumerate(prompts):
            alone = model.generate(genesis.tensor(p[None]), max_new_tokens=8).numpy()
            assert batched[row, width:].tolist() == alone[0, len(p):].tolist()

    def test_generate_restores_training_mode_and_records_no_graph(self):
        model = tiny_model()
        model.train()
        out = model.generate(genesis.tensor([[1, 2, 3]]), max_new_tokens=3)
        assert model.training and not out.requires_grad
        assert out.shape == (1, 6)
