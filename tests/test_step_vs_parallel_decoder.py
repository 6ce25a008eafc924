"""Step-wise teacher forcing (the `step` the search uses) equals the time-parallel `forward`."""
import pytest
import torch

from seq2seq_nb.attention import gru_gates, lstm_gates
from helpers import ARCHS, random_batch, tiny_model


@pytest.mark.parametrize("arch,cell", ARCHS)
@pytest.mark.parametrize("extras", [{}, {"tie_embeddings": True}, {"readout_dim": 5, "tie_embeddings": True}, {"enc_layers": 2}])
def test_step_equals_parallel(arch, cell, extras):
    m = tiny_model(arch, cell, **extras)
    b = random_batch(seed=4, B=7)
    with torch.no_grad():
        parallel, pa = m.forward_batch(b)
        stepwise, sa = m.forward_stepwise(b.src, b.src_mask, b.src_lengths, b.tgt_in)
    assert parallel.shape == stepwise.shape == (7, b.tgt_in.shape[1], 29)
    assert torch.allclose(parallel, stepwise, atol=1e-5)
    if pa is not None: assert torch.allclose(pa, sa, atol=1e-6)


def test_gradients_match_too():
    "The fused teacher-forcing path and the step reference give the same gradients."
    b = random_batch(seed=5)
    grads = []
    for fwd in ("forward_batch", "stepwise"):
        m = tiny_model("attention").train()
        out = m.forward_batch(b)[0] if fwd == "forward_batch" else m.forward_stepwise(b.src, b.src_mask, b.src_lengths, b.tgt_in)[0]
        out[b.tgt_mask].logsumexp(-1).sum().backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]: assert torch.allclose(grads[0][n], grads[1][n], atol=1e-5), n


def test_hand_written_gates_match_torch_cells():
    torch.manual_seed(0)
    x, h, c = torch.randn(4, 6), torch.randn(4, 5), torch.randn(4, 5)
    gru, lstm = torch.nn.GRUCell(6, 5), torch.nn.LSTMCell(6, 5)
    gi, gh = torch.nn.functional.linear(x, gru.weight_ih, gru.bias_ih), torch.nn.functional.linear(h, gru.weight_hh, gru.bias_hh)
    assert torch.allclose(gru_gates(gi, gh, h), gru(x, h), atol=1e-6)
    gi, gh = torch.nn.functional.linear(x, lstm.weight_ih, lstm.bias_ih), torch.nn.functional.linear(h, lstm.weight_hh, lstm.bias_hh)
    for a, r in zip(lstm_gates(gi, gh, c), lstm(x, (h, c))): assert torch.allclose(a, r, atol=1e-6)
