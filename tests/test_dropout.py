"`Dropout` (99_core): `nn.Dropout` with a CPU mask drawn as `rand >= p`; the same distribution and behaviour, used by every model."
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from seq2seq_nb.core import Dropout
from seq2seq_nb.train import load_config
from seq2seq_nb.vanilla import build_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_the_mask_keeps_1_minus_p_and_scales_by_its_inverse(p, dtype):
    torch.manual_seed(0)
    x = torch.ones(1000, 1000, dtype=dtype, requires_grad=True)          # 10^6 draws: the keep rate to within 0.002
    y = Dropout(p)(x)
    kept = y != 0
    assert y.dtype == dtype and abs(kept.float().mean().item() - (1 - p)) < 0.002
    torch.testing.assert_close(y[kept].detach(), torch.full_like(y[kept].detach(), 1 / (1 - p)))
    y.float().sum().backward()
    torch.testing.assert_close(x.grad, y.detach())                        # the same mask and scale backwards


def test_it_behaves_as_nn_dropout_at_the_edges():
    x = torch.randn(50, 40)
    assert torch.equal(Dropout(0.3).eval()(x), x) and torch.equal(Dropout(0.)(x), x)
    assert torch.equal(Dropout(1.)(x), torch.zeros_like(x))               # p = 1: torch's own path (all dropped)
    assert Dropout(0.3).state_dict() == {} and isinstance(Dropout(0.3), nn.Dropout)
    torch.manual_seed(5); a = Dropout(0.3)(x)
    torch.manual_seed(5); b = Dropout(0.3)(x)
    assert torch.equal(a, b)                                              # the seed (and a resumed RNG state) decides the mask


@pytest.mark.parametrize("config", ["tiny", "base", "bahdanau", "best", "vanilla", "attention", "transformer"])
def test_every_model_drops_out_with_it(config):
    "Every registered architecture (defaults) and the shipped configs' models use `Dropout` wherever they drop out."
    import seq2seq_nb.attention, seq2seq_nb.rnn, seq2seq_nb.transformer  # noqa: F401  (they register their models)
    from seq2seq_nb.vanilla import MODELS, ModelConfig
    mcfg = ModelConfig(arch=config) if config in MODELS else load_config(ROOT/f"configs/{config}.yaml").model
    model = build_model(mcfg, 100, 100)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(type(m) is Dropout for m in drops), [type(m) for m in drops]
