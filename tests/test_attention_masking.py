"""Masked positions get (numerically) zero probability after the softmax, in fp32, bf16 and fp16."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from seq2seq_nb.attention import BahdanauAttention, masked_softmax
from helpers import random_batch, tiny_model


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_masked_positions_get_zero(dtype):
    torch.manual_seed(0)
    scores = (torch.randn(4, 7) * 30).to(dtype)                 # large scores: overflow would show
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0]], dtype=torch.bool)
    w = masked_softmax(scores, mask)
    assert w.dtype == dtype and torch.isfinite(w).all()
    assert (w[~mask] == 0).all()                                # exactly zero, not just small
    assert torch.allclose(w.float().sum(-1), torch.ones(4), atol=1e-2)
    assert w[2, 0] == 1 and w[3, 3] == 1                        # a row with only one valid position
    ref = torch.softmax(scores.float().masked_fill(~mask, float("-inf")), -1)
    assert torch.allclose(w.float(), ref, atol=1e-2 if dtype != torch.float32 else 1e-6)



@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_fully_masked_row_is_finite(dtype):
    "A row with no valid position gets finite (uniform) weights, not NaN as with an -inf fill."
    scores = torch.randn(2, 5).to(dtype)
    mask = torch.tensor([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    w = masked_softmax(scores, mask)
    assert torch.isfinite(w).all() and (w[0, 2:] == 0).all()
    assert torch.allclose(w[1].float(), torch.full((5,), 0.2), atol=1e-3)
    assert torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)[1].isnan().all()   # what -inf would do

def test_attention_module_ignores_padding_values():
    "Changing what sits in padded positions of enc_out changes neither weights nor context."
    torch.manual_seed(0)
    attn = BahdanauAttention(query_dim=6, key_dim=8, attn_dim=5)
    enc_out, s = torch.randn(3, 6, 8), torch.randn(3, 6)
    mask = torch.arange(6)[None] < torch.tensor([[6], [2], [1]])
    c1, a1 = attn(s, attn.keys(enc_out), enc_out, mask)
    noisy = enc_out.masked_fill(~mask[..., None], 1e4)
    c2, a2 = attn(s, attn.keys(noisy), noisy, mask)
    assert torch.equal(a1, a2) and torch.allclose(c1, c2)
    assert (a1[~mask] == 0).all() and torch.allclose(a1.sum(-1), torch.ones(3))


@pytest.mark.parametrize("dtype", [torch.bfloat16])
def test_model_attention_under_autocast(dtype):
    m = tiny_model("attention")
    b = random_batch(seed=1)
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
        logits, alphas = m.forward_batch(b)
    assert torch.isfinite(logits.float()).all()
    B, T, S = alphas.shape
    assert (alphas[~b.src_mask[:, None, :].expand(B, T, S)] == 0).all()
    assert torch.allclose(alphas.float().sum(-1), torch.ones(B, T), atol=1e-2)


@settings(max_examples=80, deadline=None)
@given(lengths=st.lists(st.integers(1, 12), min_size=1, max_size=6), seed=st.integers(0, 1000),
       scale=st.floats(0.1, 1e4))
def test_property_padding_never_receives_attention(lengths, seed, scale):
    g = torch.Generator().manual_seed(seed)
    S = max(lengths)
    mask = torch.arange(S)[None] < torch.tensor(lengths)[:, None]
    scores = torch.randn(len(lengths), S, generator=g) * scale
    w = masked_softmax(scores, mask)
    assert (w[~mask] == 0).all()
    assert torch.allclose(w.sum(-1), torch.ones(len(lengths)), atol=1e-5)
