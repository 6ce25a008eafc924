"""Label smoothing puts no mass on `<pad>`/`<bos>` (plain and fused loss); sampling never outputs them."""
import torch
import torch.nn.functional as F

from seq2seq_nb.data import BOS, EOS, PAD
from seq2seq_nb.train import LinearCrossEntropy, collate_src, sample_decode
from seq2seq_nb.vanilla import max_lengths, seq2seq_loss
from helpers import tiny_model


def _smoothed_reference(logits, y, eps):
    V = logits.shape[-1]
    q = torch.full((V,), eps / (V - 2)); q[[PAD, BOS]] = 0
    keep = y != PAD
    return -((((1 - eps) * F.one_hot(y, V) + q) * logits.log_softmax(-1)).sum(-1) * keep).sum()


def test_label_smoothing_spares_pad_and_bos():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 11, generator=g, requires_grad=True)
    y = torch.randint(3, 11, (3, 6), generator=g); y[0, 4:] = PAD; y[2, 1:] = PAD
    loss = seq2seq_loss(logits, y, 0.1, reduction="sum")
    torch.testing.assert_close(loss, _smoothed_reference(logits, y, 0.1))
    grad = torch.autograd.grad(loss, logits)[0]
    keep = y != PAD
    # the two specials are only pushed down by their softmax share, never pulled up by the smoothing
    torch.testing.assert_close(grad[keep][:, [PAD, BOS]], logits.softmax(-1)[keep][:, [PAD, BOS]].detach())
    torch.testing.assert_close(seq2seq_loss(logits, y, 0.1), loss / keep.sum())


def test_fused_loss_smooths_the_same_way():
    g = torch.Generator().manual_seed(1)
    x, W, b = (torch.randn(40, 6, generator=g, requires_grad=True), torch.randn(13, 6, generator=g, requires_grad=True),
               torch.randn(13, generator=g, requires_grad=True))
    y = torch.randint(3, 13, (40,), generator=g); y[::6] = PAD
    ref = seq2seq_loss((x @ W.t() + b)[None], y[None], 0.1, reduction="sum")
    out = LinearCrossEntropy.apply(x, W, b, y, 0.1, 7)
    torch.testing.assert_close(out, _smoothed_reference(x @ W.t() + b, y, 0.1))
    torch.testing.assert_close(out, ref)
    for a, r in zip(torch.autograd.grad(out, (x, W, b)), torch.autograd.grad(ref, (x, W, b))): torch.testing.assert_close(a, r)


def test_sampling_never_outputs_pad_or_bos():
    "Even a model that prefers `<pad>` and `<bos>` samples only real tokens until `<eos>` or the length limit."
    m = tiny_model("attention", tgt_vocab=29)
    with torch.no_grad():
        bias = m.generator.output_layer()[1]; bias[[PAD, BOS]] += 50.; bias[EOS] -= 50.
    src = collate_src([[5, 6, 7, EOS], [8, 9, EOS]])
    out = sample_decode(m, *src, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert [len(o) for o in out] == max_lengths(src[2], 1.5, 10).tolist()   # no <pad>/<bos> were stripped away
    assert all(PAD not in o and BOS not in o for o in out)


def test_smoothed_loss_under_bf16_autocast_stays_fp32():
    "The smoothing term is a product (`logp @ spread`): autocast must not turn it into bf16 (0.4% error on ~V terms)."
    g = torch.Generator().manual_seed(2)
    logits, y = torch.randn(4, 7, 8000, generator=g), torch.randint(3, 8000, (4, 7), generator=g)
    ref = seq2seq_loss(logits, y, 0.1, reduction="sum")
    with torch.autocast("cpu", dtype=torch.bfloat16): got = seq2seq_loss(logits, y, 0.1, reduction="sum")
    torch.testing.assert_close(got, ref, rtol=1e-7, atol=0)                # rounded to bf16 it is ~1e-5 off
