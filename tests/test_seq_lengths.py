"""The encoder handles varying lengths; a sentence gives the same results alone and in a padded batch."""
import pytest
import torch

from seq2seq_nb.data import PAD, collate
from seq2seq_nb.vanilla import Encoder
from helpers import ARCHS, random_batch, tiny_model


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_encoder_shapes_and_padding(cell, layers):
    torch.manual_seed(0)
    enc = Encoder(23, 8, 6, layers=layers, cell=cell).eval()
    b = random_batch(seed=2)
    with torch.no_grad(): H, summary = enc(b.src, b.src_lengths)
    B, S = b.src.shape
    assert H.shape == (B, S, 12) and summary.shape == (B, 12)
    assert (H[~b.src_mask] == 0).all()
    last = b.src_lengths - 1
    assert torch.allclose(summary[:, :6], H[torch.arange(B), last, :6])   # forward half at the last real token
    assert torch.allclose(summary[:, 6:], H[:, 0, 6:])                     # backward half at the first token


@pytest.mark.parametrize("arch,cell", ARCHS)
def test_alone_equals_in_batch(arch, cell):
    m = tiny_model(arch, cell)
    b = random_batch(seed=3, B=6)
    with torch.no_grad():
        mem = m.encode(b.src, b.src_mask, b.src_lengths)
        logits, alphas = m.forward_batch(b)
        for i in range(len(b)):
            S_i, T_i = int(b.src_lengths[i]), int(b.tgt_mask[i].sum())
            one = collate([(0, b.src[i, :S_i].tolist(), b.tgt_out[i, :T_i - 1].tolist())])
            mem1 = m.encode(one.src, one.src_mask, one.src_lengths)
            if arch == "attention":
                assert torch.allclose(mem1.enc_out[0], mem.enc_out[i, :S_i], atol=1e-5)
            assert torch.allclose(mem1.summary[0], mem.summary[i], atol=1e-5)
            l1, a1 = m.forward_batch(one)
            assert torch.allclose(l1[0], logits[i, :T_i], atol=1e-5)
            if alphas is not None: assert torch.allclose(a1[0], alphas[i, :T_i, :S_i], atol=1e-5)


def test_sentence_of_length_one():
    m = tiny_model("attention")
    b = collate([(0, [3], [5]), (1, [7, 8, 9, 3], [5, 6, 7])])
    with torch.no_grad(): logits, alphas = m.forward_batch(b)
    assert torch.isfinite(logits).all() and torch.equal(alphas[0, :, 0], torch.ones(alphas.shape[1]))
