"The benchmark's analytic FLOP count (the numerator of its MFU) agrees with torch's own count of the matmul FLOPs."
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from seq2seq_nb.data import EOS
from seq2seq_nb.train import load_config
from seq2seq_nb.vanilla import build_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/"scripts"))
from bench import train_flops_per_target_token  # noqa: E402


@pytest.mark.filterwarnings("ignore:TF32 acceleration")   # printed by mkldnn.flags on builds without Intel GPU support
@pytest.mark.parametrize("overrides", [
    [],                                                                                   # the base config (tied)
    ["model.attn_dim=512", "model.readout_dim=512", "model.tie_embeddings=false"],        # the JoeyNMT-matched sizes
    ["model.cell=lstm", "model.enc_layers=2", "data.vocab_size=2000"],
])
def test_analytic_training_flops_match_counted(overrides):
    cfg = load_config(ROOT/"configs/base.yaml", overrides)
    V = cfg.data.vocab_size
    torch.manual_seed(0)
    model = build_model(cfg.model, V, V)
    B, S, T = 8, 12, 10
    src = torch.randint(4, V, (B, S)); src[:, -1] = EOS
    src_mask, lengths = torch.ones(B, S, dtype=torch.bool), torch.full((B,), S)
    tgt_in, tgt_out = torch.randint(4, V, (B, T)), torch.randint(4, V, (B, T))
    with torch.backends.mkldnn.flags(enabled=False), FlopCounterMode(display=False) as fc:  # oneDNN's fused LSTM is not counted
        logits, _ = model(src, src_mask, lengths, tgt_in)
        torch.nn.functional.cross_entropy(logits.reshape(-1, V), tgt_out.reshape(-1)).backward()
    counted = fc.get_total_flops() / (B * T)
    analytic = train_flops_per_target_token(cfg, src_per_tgt=S / T, attn_span=S)
    assert abs(analytic / counted - 1) < 0.02, (analytic, counted)
