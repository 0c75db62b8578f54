"""Text generation for causal LMs: the KV cache, HF's logits processors and ``generate``.

``GenerationMixin.generate`` follows HuggingFace's greedy/sampling loop: a prefill pass over
the (left-padded) prompts, then one token per step through a ``DynamicCache``; repetition
penalty, then (only when sampling) temperature -> top-k -> top-p; finished rows are padded.
"""
import warnings

import numpy as np

from ... import backends
from ...autograd import is_grad_enabled, no_grad
from ...creation import multinomial
from ...ops import cat, index_select
from ...tensor import Tensor

__all__ = ["DynamicCache", "GenerationMixin", "LogitsProcessorList",
           "RepetitionPenaltyLogitsProcessor", "TemperatureLogitsWarper", "TopKLogitsWarper",
           "TopPLogitsWarper"]


class DynamicCache:
    """Per-layer key/value cache grown along the sequence dim (-2), as HF's ``DynamicCache``.

    Without autograd the cache keeps one preallocated buffer per layer whose capacity doubles
    when full, so a decode step copies only the new token; ``update`` returns views of the
    filled part. When the new keys/values require grad the cache concatenates differentiably.
    """

    def __init__(self):
        self._keys = []
        self._values = []
        self._lengths = []

    def __len__(self):
        return len(self._lengths)

    def __getitem__(self, layer_idx):
        """``(keys, values)`` cached for one layer, each ``[B, H_kv, S, D]``."""
        if not 0 <= layer_idx < len(self._lengths):
            raise IndexError(f"DynamicCache: layer {layer_idx} is not cached (cache holds "
                             f"{len(self._lengths)} layers)")
        return self._view(layer_idx)

    def _view(self, layer_idx):
        n = self._lengths[layer_idx]
        k, v = self._keys[layer_idx], self._values[layer_idx]
        if isinstance(k, Tensor):
            return k, v
        return Tensor._make(k[:, :, :n]), Tensor._make(v[:, :, :n])

    def update(self, key_states, value_states, layer_idx):
        """Append ``[B, H_kv, S_new, D]`` keys/values of ``layer_idx``; return all of them."""
        if layer_idx > len(self._lengths):
            raise IndexError(f"DynamicCache.update: layer {layer_idx} updated before layer "
                             f"{len(self._lengths)}; layers must be filled in order")
        if key_states.shape[:3] != value_states.shape[:3]:
            raise ValueError(f"DynamicCache.update: keys {tuple(key_states.shape)} and values "
                             f"{tuple(value_states.shape)} disagree on [B, H_kv, S]")
        differentiable = is_grad_enabled() and (key_states.requires_grad
                                                or value_states.requires_grad)
        if layer_idx == len(self._lengths):
            self._keys.append(None)
            self._values.append(None)
            self._lengths.append(0)
        if differentiable or isinstance(self._keys[layer_idx], Tensor):
            return self._update_graph(key_states, value_states, layer_idx)
        self._keys[layer_idx] = self._append(self._keys[layer_idx], key_states._array,
                                             self._lengths[layer_idx])
        self._values[layer_idx] = self._append(self._values[layer_idx], value_states._array,
                                               self._lengths[layer_idx])
        self._lengths[layer_idx] += key_states.shape[-2]
        return self._view(layer_idx)

    @staticmethod
    def _append(buf, new, length):
        """Write ``new`` after ``length`` filled positions of ``buf``, doubling it when full."""
        need = length + new.shape[-2]
        if buf is None or buf.shape[-2] < need or buf.shape[:2] != new.shape[:2] \
                or buf.dtype != new.dtype:
            xp = backends.xp_for(backends.device_of_array(new))
            cap = max(need, 2 * (buf.shape[-2] if buf is not None else 0), 16)
            grown = xp.empty(new.shape[:2] + (cap,) + new.shape[3:], dtype=new.dtype)
            if buf is not None and length:
                grown[:, :, :length] = buf[:, :, :length]
            buf = grown
        buf[:, :, length:need] = new
        return buf

    def _update_graph(self, key_states, value_states, layer_idx):
        if self._lengths[layer_idx] == 0:
            k, v = key_states, value_states
        else:
            old_k, old_v = self._view(layer_idx)
            k, v = cat([old_k, key_states], dim=-2), cat([old_v, value_states], dim=-2)
        self._keys[layer_idx], self._values[layer_idx] = k, v
        self._lengths[layer_idx] = k.shape[-2]
        return k, v

    def get_seq_length(self, layer_idx=0):
        """Number of cached positions of ``layer_idx`` (0 for an empty cache)."""
        return self._lengths[layer_idx] if layer_idx < len(self._lengths) else 0

    def get_max_length(self):
        """None: a dynamic cache has no maximum length."""
        return None

    def crop(self, max_length):
        """Keep only the first ``max_length`` positions (negative: drop that many from the end)."""
        for i, n in enumerate(self._lengths):
            keep = max_length if max_length >= 0 else max(n + max_length, 0)
            if keep >= n:
                continue
            if isinstance(self._keys[i], Tensor):
                self._keys[i] = self._keys[i][:, :, :keep]
                self._values[i] = self._values[i][:, :, :keep]
            self._lengths[i] = keep

    def reorder_cache(self, beam_idx):
        """Reorder the batch rows of every layer by ``beam_idx`` (a 1-D index tensor)."""
        idx = beam_idx._array if isinstance(beam_idx, Tensor) else np.asarray(beam_idx)
        for i in range(len(self._lengths)):
            if isinstance(self._keys[i], Tensor):
                t = Tensor._make(idx)
                self._keys[i] = index_select(self._keys[i], 0, t)
                self._values[i] = index_select(self._values[i], 0, t)
            else:
                self._keys[i] = self._keys[i][idx]
                self._values[i] = self._values[i][idx]

    def to_legacy_cache(self):
        """The cache as a tuple of ``(keys, values)`` per layer."""
        return tuple(self._view(i) for i in range(len(self._lengths)))

    @classmethod
    def from_legacy_cache(cls, past_key_values):
        """Build a cache from a tuple of ``(keys, values)`` per layer (None gives an empty one)."""
        cache = cls()
        for layer_idx, (k, v) in enumerate(past_key_values or ()):
            cache.update(k, v, layer_idx)
        return cache


class RepetitionPenaltyLogitsProcessor:
    """HF's repetition penalty: for ids already in a row, s -> s*θ if s < 0 else s/θ."""

    def __init__(self, penalty):
        if not penalty > 0:
            raise ValueError(f"repetition_penalty has to be a strictly positive float, got "
                             f"{penalty}")
        self.penalty = float(penalty)

    def __call__(self, input_ids, scores):
        """Penalised copy of ``scores`` [B, V] given ``input_ids`` [B, L]."""
        xp = _xp(scores)
        ids = input_ids._array
        s = scores._array.copy()
        picked = xp.take_along_axis(s, ids, axis=1)
        picked = xp.where(picked < 0, picked * self.penalty, picked / self.penalty)
        xp.put_along_axis(s, ids, picked.astype(s.dtype), axis=1)
        return Tensor._make(s)


class TemperatureLogitsWarper:
    """Divide the scores by a strictly positive temperature."""

    def __init__(self, temperature):
        if not temperature > 0:
            raise ValueError(f"temperature has to be a strictly positive float, got "
                             f"{temperature}")
        self.temperature = float(temperature)

    def __call__(self, input_ids, scores):
        """``scores / temperature``."""
        return Tensor._make((scores._array / scores._array.dtype.type(self.temperature)))


class TopKLogitsWarper:
    """Keep the ``top_k`` largest scores per row (ties at the threshold kept), rest -> -inf."""

    def __init__(self, top_k, filter_value=-float("inf"), min_tokens_to_keep=1):
        if not isinstance(top_k, (int, np.integer)) or top_k <= 0:
            raise ValueError(f"top_k has to be a strictly positive integer, got {top_k}")
        self.top_k = max(int(top_k), int(min_tokens_to_keep))
        self.filter_value = filter_value

    def __call__(self, input_ids, scores):
        """Scores below the k-th largest of each row set to ``filter_value``."""
        xp = _xp(scores)
        s = scores._array
        k = min(self.top_k, s.shape[-1])
        kth = -xp.partition(-s, k - 1, axis=-1)[:, k - 1:k]
        return Tensor._make(xp.where(s < kth, s.dtype.type(self.filter_value), s))


class TopPLogitsWarper:
    """Nucleus filtering with HF's definition: drop the ascending-sorted prefix of cumulative
    probability <= 1 - top_p, always keeping the ``min_tokens_to_keep`` most likely tokens."""

    def __init__(self, top_p, filter_value=-float("inf"), min_tokens_to_keep=1):
        top_p = float(top_p)
        if not 0.0 <= top_p <= 1.0:
            raise ValueError(f"top_p has to be a float in [0, 1], got {top_p}")
        if int(min_tokens_to_keep) < 1:
            raise ValueError(f"min_tokens_to_keep has to be a positive integer, got "
                             f"{min_tokens_to_keep}")
        self.top_p = top_p
        self.filter_value = filter_value
        self.min_tokens_to_keep = int(min_tokens_to_keep)

    def __call__(self, input_ids, scores):
        """Scores outside the nucleus set to ``filter_value``."""
        xp = _xp(scores)
        s = scores._array
        order = xp.argsort(s, axis=-1, kind="stable")
        sorted_s = xp.take_along_axis(s, order, axis=-1)
        cum = xp.cumsum(_softmax(xp, sorted_s), axis=-1)
        remove_sorted = cum <= (1 - self.top_p)
        remove_sorted[:, -self.min_tokens_to_keep:] = False
        remove = xp.empty_like(remove_sorted)
        xp.put_along_axis(remove, order, remove_sorted, axis=-1)
        return Tensor._make(xp.where(remove, s.dtype.type(self.filter_value), s))


class LogitsProcessorList(list):
    """A list of processors applied in order: ``scores = p(input_ids, scores)`` for each."""

    def __call__(self, input_ids, scores):
        """Run every processor in turn."""
        for processor in self:
            scores = processor(input_ids, scores)
        return scores


def _xp(t):
    return backends.xp_for(t.device)


def _softmax(xp, s):
    e = xp.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _token_list(value, what):
    if value is None:
        return []
    if isinstance(value, Tensor):
        value = value.tolist()
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(v, (int, np.integer)) for v in values):
        raise TypeError(f"generate: {what} must be an int or a list of ints, got {value!r}")
    return [int(v) for v in values]


def _notify(streamer, tokens):
    if streamer is None:
        return
    if hasattr(streamer, "put"):
        streamer.put(tokens)
    else:
        streamer(tokens)


class GenerationMixin:
    """Adds HF-style ``generate`` to a causal LM whose forward takes ``input_ids``,
    ``attention_mask``, ``position_ids``, ``past_key_values``, ``use_cache``, ``return_dict``
    and ``logits_to_keep`` (only the last position's logits are needed)."""

    def _get_logits_processor(self, do_sample, temperature, top_k, top_p, repetition_penalty):
        """The processors in HF's order; warpers only when sampling."""
        processors = LogitsProcessorList()
        if repetition_penalty is not None and repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(repetition_penalty))
        if do_sample:
            if temperature is not None and temperature != 1.0:
                processors.append(TemperatureLogitsWarper(temperature))
            if top_k is not None and top_k != 0:
                processors.append(TopKLogitsWarper(top_k))
            if top_p is not None and top_p < 1.0:
                processors.append(TopPLogitsWarper(top_p))
        return processors

    def generate(self, input_ids, max_new_tokens=20, do_sample=False, temperature=1.0, top_k=50,
                 top_p=1.0, repetition_penalty=1.0, eos_token_id=None, pad_token_id=None,
                 attention_mask=None, use_cache=True, generator=None, streamer=None):
        """Greedy or sampled continuation of ``input_ids`` [B, L]; returns prompt + new tokens.

        Prompts of different lengths are LEFT-padded with ``attention_mask`` marking real
        tokens (0 = pad). Greedy when ``do_sample`` is False or ``temperature`` is 0, sampled
        with ``generator`` (default: genesis's seeded generator) otherwise. A row stops at
        ``eos_token_id`` (default ``config.eos_token_id``) and is then filled with
        ``pad_token_id`` (default ``config.pad_token_id``, else the eos id); generation ends
        when every row has stopped or after ``max_new_tokens``. ``streamer``: an object with
        ``put(tokens)``/``end()`` (HF's protocol; ``put`` first gets the prompt) or a callable
        given each step's new tokens [B].
        """
        input_ids = self._check_generate_inputs(input_ids, max_new_tokens)
        config = getattr(self, "config", None)
        eos = _token_list(eos_token_id if eos_token_id is not None
                          else getattr(config, "eos_token_id", None), "eos_token_id")
        pad = pad_token_id if pad_token_id is not None else getattr(config, "pad_token_id", None)
        if pad is None and eos:
            pad = eos[0]
        greedy = not do_sample or temperature == 0
        if not do_sample and (temperature not in (None, 1.0, 0) or top_p not in (None, 1.0)):
            warnings.warn("generate: do_sample=False, so temperature/top_k/top_p are ignored "
                          "and decoding is greedy; pass do_sample=True to sample", stacklevel=2)
        processors = self._get_logits_processor(not greedy, temperature, top_k, top_p,
                                                repetition_penalty)
        xp = _xp(input_ids)
        ids = input_ids._array.astype(np.int64)
        mask = self._generation_mask(ids, attention_mask, pad, eos, xp)
        was_training = getattr(self, "training", False)
        if was_training:
            self.eval()
        try:
            with no_grad():
                return self._decode(ids, mask, max_new_tokens, greedy, processors, eos, pad,
                                    use_cache, generator, streamer, xp)
        finally:
            if was_training:
                self.train()

    @staticmethod
    def _check_generate_inputs(input_ids, max_new_tokens):
        if not isinstance(input_ids, Tensor):
            raise TypeError(f"generate: input_ids must be a genesis Tensor of token ids, got "
                            f"{type(input_ids).__name__}")
        if input_ids.ndim != 2 or input_ids.shape[1] == 0:
            raise ValueError(f"generate: input_ids must have shape [batch, length>0], got "
                             f"{tuple(input_ids.shape)} (use input_ids.unsqueeze(0) for one "
                             f"prompt)")
        if input_ids.dtype.is_floating_point or input_ids.dtype.name == "bool":
            raise TypeError(f"generate: input_ids must be an integer tensor, got "
                            f"{input_ids.dtype}")
        if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 0:
            raise ValueError(f"generate: max_new_tokens must be a non-negative int, got "
                             f"{max_new_tokens!r}")
        return input_ids

    @staticmethod
    def _generation_mask(ids, attention_mask, pad, eos, xp):
        """The 2-D keep-mask: given, or inferred from pad ids like HF, else all ones."""
        if attention_mask is not None:
            mask = attention_mask._array if isinstance(attention_mask, Tensor) else \
                xp.asarray(attention_mask)
            if tuple(mask.shape) != tuple(ids.shape):
                raise ValueError(f"generate: attention_mask shape {tuple(mask.shape)} must match "
                                 f"input_ids shape {tuple(ids.shape)}")
            return mask.astype(np.int64)
        if pad is not None and pad not in eos and bool((ids == pad).any()):
            return (ids != pad).astype(np.int64)
        return xp.ones(ids.shape, dtype=np.int64)

    def _decode(self, ids, mask, max_new_tokens, greedy, processors, eos, pad, use_cache,
                generator, streamer, xp):
        """The token loop: prefill, then one token per step (all inputs again without cache)."""
        if streamer is not None and hasattr(streamer, "put"):
            streamer.put(Tensor._make(ids.copy()))
        batch = ids.shape[0]
        unfinished = xp.ones(batch, dtype=bool)
        eos_arr = xp.asarray(eos, dtype=np.int64) if eos else None
        cache = DynamicCache() if use_cache else None
        for _ in range(max_new_tokens):
            positions = xp.cumsum(mask, axis=-1) - 1
            positions = xp.where(mask == 0, 1, positions)
            past = cache.get_seq_length() if cache is not None else 0
            out = self(Tensor._make(ids[:, past:]), attention_mask=Tensor._make(mask),
                       position_ids=Tensor._make(positions[:, past:]), past_key_values=cache,
                       use_cache=use_cache, return_dict=True, logits_to_keep=1)
            if use_cache:
                cache = out.past_key_values
            scores = Tensor._make(out.logits._array[:, -1, :].astype(np.float32))
            scores = processors(Tensor._make(ids), scores)
            if greedy:
                next_tokens = xp.argmax(scores._array, axis=-1)
            else:
                probs = Tensor._make(_softmax(xp, scores._array))
                next_tokens = multinomial(probs, 1, generator=generator)._array[:, 0]
            next_tokens = next_tokens.astype(np.int64)
            if pad is not None:
                next_tokens = xp.where(unfinished, next_tokens, pad)
            ids = xp.concatenate([ids, next_tokens[:, None]], axis=1)
            mask = xp.concatenate([mask, xp.ones((batch, 1), dtype=mask.dtype)], axis=1)
            _notify(streamer, Tensor._make(next_tokens))
            if eos_arr is not None:
                unfinished &= ~xp.isin(next_tokens, eos_arr)
                if not bool(unfinished.any()):
                    break
        if streamer is not None and hasattr(streamer, "end"):
            streamer.end()
        return Tensor._make(ids)
