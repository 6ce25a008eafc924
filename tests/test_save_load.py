"""A model's state_dict round trip gives identical outputs (the checkpoint files are tested with training)."""
import io

import pytest
import torch

from seq2seq_nb.vanilla import greedy_decode
from helpers import ARCHS, random_batch, tiny_model


@pytest.mark.parametrize("arch,cell", ARCHS)
@pytest.mark.parametrize("tie", [False, True])
def test_state_dict_round_trip(arch, cell, tie):
    m = tiny_model(arch, cell, seed=1, tie_embeddings=tie)
    buf = io.BytesIO(); torch.save(m.state_dict(), buf); buf.seek(0)
    m2 = tiny_model(arch, cell, seed=2, tie_embeddings=tie)
    b = random_batch(seed=6)
    with torch.no_grad(): assert not torch.allclose(m.forward_batch(b)[0], m2.forward_batch(b)[0])
    m2.load_state_dict(torch.load(buf, weights_only=True))
    with torch.no_grad():
        assert torch.equal(m.forward_batch(b)[0], m2.forward_batch(b)[0])
    d1, d2 = (greedy_decode(x, b.src, b.src_mask, b.src_lengths) for x in (m, m2))
    assert torch.equal(d1.tokens, d2.tokens) and torch.equal(d1.scores, d2.scores)
    if tie: assert m2.generator.tied[0].weight is m2.emb.weight  # still tied after loading
