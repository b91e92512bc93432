"""A leaner forward pass for Qwen2 models: transformers' own pieces, without its per-call plumbing.

While decoding one token per step the products are ~60% of a step on these CPUs; much of the
rest is Python around ~100 small operations per block: transformers' module calls (decorators
that rename deprecated arguments, output capturing, configuration lookups), and FusedPart's
memo that lets transformers call q/k/v and gate/up one by one. Here each block is one function
over the same modules: the fused products are called once and split, the rest is transformers'
own code (the RMSNorm modules, rotary embedding, causal mask, attention function the model is
configured with), in transformers' order, so the numbers are the same bit for bit
(tests/model/test_lean_forward.py compares logits and cache with the stock forward).
Measured on the Qwen1.5-0.5B shape, int8, 2 threads (Intel Xeon, AVX512-VNNI): see docs/performance.md.

Only what this covers is taken over: a Qwen2ForCausalLM whose every layer is full attention, with
SDPA attention (transformers' or model.kv_dtype's), in inference. Anything else (another
architecture, sliding windows, eager or flash attention) runs transformers' forward unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import Qwen2ForCausalLM
from transformers.masking_utils import create_causal_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb

from model.fused_linear import FusedLinear
from model.kv_dtype import ATTENTION
from model.torch_internals import attn_implementation

SDPA_IMPLEMENTATIONS = frozenset({"sdpa", ATTENTION})


@dataclass(frozen=True, slots=True)
class LeanOutput:
    logits: torch.Tensor


def lean_forward(model: Any) -> LeanQwen2 | None:
    """A lean forward for this model, or None if it is not one this module covers."""
    if not isinstance(model, Qwen2ForCausalLM) or model.training:
        return None
    config = model.config
    if attn_implementation(config) not in SDPA_IMPLEMENTATIONS:
        return None
    if any(kind != "full_attention" for kind in config.layer_types):
        return None
    return LeanQwen2(model)


class _Projections:
    """Several projections of one input: one fused product split by columns, or each Linear."""

    def __init__(self, fused: nn.Module | None, parts: list[nn.Module]) -> None:
        self._linear = fused.linear if isinstance(fused, FusedLinear) else None
        self._parts = parts
        widths = [part.out_features for part in parts]
        self._bounds = [(sum(widths[:i]), sum(widths[: i + 1])) for i in range(len(widths))]

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self._linear is None:
            return [part(x) for part in self._parts]
        out = self._linear(x)
        return [out[..., start:stop] for start, stop in self._bounds]


class _Block:
    """One Qwen2DecoderLayer's forward (transformers' order of operations) over its modules."""

    def __init__(self, layer: nn.Module) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        self.index, self.attn = attn.layer_idx, attn
        self.norm_in, self.norm_post = layer.input_layernorm, layer.post_attention_layernorm
        self.qkv = _Projections(
            getattr(attn, "fused_q_k_v", None), [attn.q_proj, attn.k_proj, attn.v_proj]
        )
        self.gate_up = _Projections(
            getattr(mlp, "fused_gate_up", None), [mlp.gate_proj, mlp.up_proj]
        )
        self.o_proj, self.down_proj, self.act = attn.o_proj, mlp.down_proj, mlp.act_fn
        self.head_dim, self.scaling = attn.head_dim, attn.scaling

    def __call__(self, x, position_embeddings, mask, cache, attention) -> torch.Tensor:
        shape = (*x.shape[:-1], -1, self.head_dim)
        q, k, v = (p.view(shape).transpose(1, 2) for p in self.qkv(self.norm_in(x)))
        q, k = apply_rotary_pos_emb(q, k, *position_embeddings)
        k, v = cache.update(k, v, self.index)
        out, _ = attention(self.attn, q, k, v, mask, dropout=0.0, scaling=self.scaling)
        x = x + self.o_proj(out.reshape(*x.shape[:-1], -1).contiguous())
        gate, up = self.gate_up(self.norm_post(x))
        return x + self.down_proj(self.act(gate) * up)


class LeanQwen2:
    """Called as the scheduler calls the model (keyword inputs, a cache it appends to); returns
    an object with `.logits` as transformers' forward does."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.generation_config = model.generation_config
        inner = model.model
        self._blocks = [_Block(layer) for layer in inner.layers]
        self._embed, self._rotary, self._norm = inner.embed_tokens, inner.rotary_emb, inner.norm
        self._head = model.lm_head

    def __call__(
        self,
        *,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: Any,
        use_cache: bool = True,  # always: the cache is how the scheduler gets keys and values
        logits_to_keep: int = 0,
    ) -> LeanOutput:
        config = self.model.config
        attention = ALL_ATTENTION_FUNCTIONS[attn_implementation(config)]  # as the model is set now
        x = self._embed(input_ids)
        mask = create_causal_mask(
            config=config,
            inputs_embeds=x,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=position_ids,
        )
        position_embeddings = self._rotary(x, position_ids)
        for block in self._blocks:
            x = block(x, position_embeddings, mask, cache, attention)
        x = self._norm(x)
        return LeanOutput(self._head(x[:, -logits_to_keep:] if logits_to_keep else x))
