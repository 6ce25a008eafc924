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
    [],                                                                                   # the Bahdanau config (tied)
    ["model.attn_dim=512", "model.readout_dim=512", "model.tie_embeddings=false"],        # the JoeyNMT-matched sizes
    ["model.cell=lstm", "model.enc_layers=2", "data.vocab_size=2000"],
])
def test_analytic_training_flops_match_counted(overrides):
    cfg = load_config(ROOT/"configs/bahdanau.yaml", overrides)
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


def _result(gpu:bool) -> dict:
    "A benchmark result of the shape `main` writes (figures made up: only the table's wording is under test)."
    train = {"tokens_per_s": 1000.0, "padding": {"tgt": 0.01, "src": 0.05}, "peak_rss_mb": 900.0, **({"peak_gpu_mb": 800.0} if gpu else {})}
    r = {"cpu": "Some CPU", "capability": "AVX2", "threads": 1, "torch": "2.x",
         "matmul": {"fp32": {"gflops": 50.0}, "bf16": {"gflops": 400.0}}, "train_fp32": train,
         "train_bf16": {"tokens_per_s": 1500.0, "emulated": False}, "train_flops_per_token": 3e7, "mfu_fp32": 0.6}
    if gpu:
        r.update(gpu="Some GPU", cuda="13.0", train_fp16={"tokens_per_s": 2000.0}, mfu_bf16=0.1)
        r["matmul"].update(tf32={"gflops": 300.0}, fp16={"gflops": 700.0})
        r["train_big"] = {"fp32": {"tokens_per_s": 4000.0, "batch_tokens": 16000, "peak_gpu_mb": 3000.0},
                          "bf16": {"tokens_per_s": 6000.0, "batch_tokens": 16000, "peak_gpu_mb": 2500.0}}
        r["train_fp32"]["batch_tokens"] = 2000
        dec = lambda s: {"sent_per_s": s, "bleu": 50.0, "mean_len": 15.0, "hyp_steps_per_s": 10 * s}
        r["decode"] = {"greedy": dec(100.0), "beam5": dec(40.0), "peak_rss_mb": 500.0,
                       "greedy_graph": {**dec(300.0), "same_as_greedy": 0.999}}
        r["decode_bf16"] = {"greedy": dec(120.0), "beam5": dec(50.0), "greedy_graph": {**dec(480.0), "same_as_greedy": 1.0}}
    return r


def test_the_table_names_the_gpu_and_every_precision_it_measured():
    import re
    from bench import table
    cpu, gpu = (re.sub(r" +", " ", table(_result(g))) for g in (False, True))     # cells are padded to the widest
    assert "GPU" not in cpu and "fp16" not in cpu and "matmul fp32 / bf16 | 50 / 400 GFLOP/s" in cpu
    assert "| GPU " in gpu and "Some GPU (CUDA 13.0)" in gpu and "matmul fp32 / bf16 / tf32 / fp16 | 50 / 400 / 300 / 700 GFLOP/s" in gpu
    assert "2,000 target tokens/s (2.00x fp32)" in gpu and "peak GPU memory, training fp32 | 800 MB" in gpu
    assert "train fp32, batches of 16,000 tokens | 4,000 target tokens/s (4.00x the config's 2,000-token batches" in gpu
    assert "train bf16, batches of 16,000 tokens | 6,000 target tokens/s (4.00x the config's" in gpu   # against bf16's 1,500
    assert "decode greedy fp32, CUDA graph per step | 300.0 sentences/s (3.00x the plain loop; test BLEU 50.0; 99.9% of" in gpu
    assert "decode greedy bf16, CUDA graph per step | 480.0 sentences/s (4.00x the plain loop" in gpu
    assert "CUDA graph" not in cpu and "batches of 16,000" not in cpu


def test_cuda_mode_on_a_machine_without_cuda_says_so(tmp_path):
    import subprocess
    if torch.cuda.is_available(): pytest.skip("this machine has CUDA")
    r = subprocess.run([sys.executable, str(ROOT/"scripts/bench.py"), "--device", "cuda", "--out", str(tmp_path/"b.json")],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 1 and "no CUDA device" in r.stderr and "Traceback" not in r.stderr and not (tmp_path/"b.json").exists()


def test_the_decoding_child_runs_in_the_precision_it_is_given_and_extra_arguments_win(tiny_run, monkeypatch):
    """bf16 decoding is its own child (`decode_bf16`): its extra arguments must override the defaults that `child`
    adds for decoding (here the one-sentence-at-a-time baseline, 100 sentences by default, is turned off)."""
    import argparse
    import bench
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    args = argparse.Namespace(config=str(ROOT/"configs/tiny.yaml"), threads=1, repeats=1, device="cpu", steps=1, warmup=0, set=[],
                              ckpt=str(tiny_run/"best.pt"), decode_repeats=1, single_sentences=100, decode_sentences=12)
    fp32 = bench.child("decode", args, ["--single-sentences", "3"])
    bf16 = bench.child("decode", args, ["--precision", "bf16", "--single-sentences", "0"])
    assert (fp32["precision"], fp32["sentences"], fp32["beam5_single"]["sentences"]) == ("fp32", 12, 3)
    assert bf16["precision"] == "bf16" and bf16["sentences"] == 12 and "beam5_single" not in bf16 and bf16["peak_rss_mb"] > 0
    for r in (fp32, bf16):
        for k in ("greedy", "beam5"): assert r[k]["sent_per_s"] > 0 and r[k]["hyp_steps_per_s"] > 0 and 0 <= r[k]["bleu"] <= 100


def test_the_table_shows_bf16_decoding_against_fp32():
    import re
    from bench import table
    r = _result(False)
    dec = lambda s: {"sent_per_s": s, "hyp_steps_per_s": 10 * s, "bleu": 54.0, "mean_len": 15.0}
    r["decode"] = {"greedy": dec(200.0), "beam5": dec(100.0), "beam5_single": {"sent_per_s": 4.0}, "peak_rss_mb": 500.0}
    t = re.sub(r" +", " ", table(r))
    assert "bf16 autocast" not in t.split("decode greedy")[1]                        # not measured: no row
    r["decode_bf16"] = {"greedy": dec(300.0), "beam5": dec(140.0)}
    t = re.sub(r" +", " ", table(r))
    assert "decode beam5 bf16 autocast | 140.0 sentences/s (1.40x fp32; test BLEU 54.0" in t
    assert "decode greedy bf16 autocast | 300.0 sentences/s (1.50x fp32;" in t and "one sentence at a time | 4.0" in t
    del r["decode"]["beam5_single"]                                                  # --single-sentences 0
    assert "one sentence at a time" not in table(r) and "peak RSS, decoding" in table(r)


def test_the_table_says_what_precision_auto_picks_and_whether_training_agrees():
    import re
    from bench import table
    r = _result(False)
    probe = "512² matmul: bf16 400 vs fp32 180 GFLOP/s"
    r["precision_auto"] = {"picks": "bf16", "probe": probe, "train_bf16_over_fp32": 1.42}
    t = re.sub(r" +", " ", table(r))
    assert f"precision: auto picks | bf16 ({probe}); bf16 training measured at 1.42x fp32 |" in t
    r["precision_auto"]["train_bf16_over_fp32"] = 0.9                             # a probe that would mislead auto
    assert "the probe disagrees with training" in table(r)
    r["precision_auto"] = {"picks": "fp32", "probe": "512² matmul: bf16 1 vs fp32 100 GFLOP/s", "train_bf16_over_fp32": None}
    assert "fp32 (512² matmul: bf16 1 vs fp32 100 GFLOP/s); bf16 training not measured (emulated) |" in re.sub(r" +", " ", table(r))


def test_the_training_profile_splits_the_step_into_matrix_products_and_the_rest(monkeypatch):
    "The profile child runs the real training step and finds its matrix products; the table explains the MFU with it."
    import argparse, re
    import bench
    from bench import table
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    args = argparse.Namespace(config=str(ROOT/"configs/tiny.yaml"), threads=1, repeats=1, device="cpu", steps=2, warmup=1, set=[])
    p = bench.child("profile", args)
    shares = dict(p["top"])
    assert p["steps"] == 2 and 0.05 < p["matmul_share"] < 1 and 0 < sum(shares.values()) <= 1 + 1e-9
    assert any(k in bench.MATMUL_OPS for k in shares) and list(shares.values()) == sorted(shares.values(), reverse=True)
    r = _result(False)                                                      # MFU 60% of the made-up table
    r["train_profile"] = {"matmul_share": 0.75, "top": [["aten::addmm", 0.5], ["aten::tanh", 0.1], ["aten::mm", 0.25],
                                                        ["aten::mul", 0.05]], "steps": 8}
    t = re.sub(r" +", " ", table(r))
    assert "time in matrix products (profiled) | 75%, running at 80% of the fp32 matmul rate above; the most of the rest: tanh 10%, mul 5% |" in t


def test_the_memory_child_trains_distinct_batches_and_reports_the_caches_it_ran_with(monkeypatch):
    "The memory comparison: RSS along distinct real batches, in the cache setting the parent gives (the user's value wins)."
    import argparse, re
    import bench
    from bench import table
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    monkeypatch.delenv("LRU_CACHE_CAPACITY", raising=False)
    args = argparse.Namespace(config=str(ROOT/"configs/tiny.yaml"), threads=1, repeats=1, device="cpu", steps=10, warmup=0, set=[])
    capped = bench.child("memory", args)
    default = bench.child("memory", args, env=dict.fromkeys(("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"), "1024"))
    assert capped["caches"] == {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "8", "LRU_CACHE_CAPACITY": "8"}
    assert default["caches"] == {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024", "LRU_CACHE_CAPACITY": "1024"}
    for m in (capped, default):
        assert [s for s, _ in m["rss_mb"]] == [0, 2, 4, 6, 8, 10] and all(v > 0 for _, v in m["rss_mb"]) and m["tokens_per_s"] > 0
    r = _result(False)
    r["memory_bf16"] = {"capped": {**capped, "rss_mb": [[0, 400.0], [125, 1200.0], [250, 1210.0]]},
                        "1024": {**default, "rss_mb": [[0, 400.0], [125, 2000.0], [250, 3000.0]], "tokens_per_s": 4567.0}}
    t = re.sub(r" +", " ", table(r))
    assert "| RSS over 250 bf16 steps, oneDNN caches capped at 8 | 400 → 1,200 → 1,210 MB (" in t
    assert "| RSS over 250 bf16 steps, oneDNN caches at 1,024 | 400 → 2,000 → 3,000 MB (4,567 target tokens/s) |" in t


def test_the_table_shows_the_second_matmul_measurement_the_mfu_may_use():
    "The fp32 reference is measured before and after the fp32 training row; a slow spell lowers one, and the table says which counts."
    import re
    from bench import table
    r = _result(False)
    assert "again after training" not in table(r)                                 # files without it
    r["matmul_again"] = {"fp32": {"gflops": 180.0}, "bf16": {"gflops": 410.0}}
    assert "matmul fp32 / bf16 | 50 / 400 GFLOP/s (fp32 again after training: 180; the MFU uses the higher) |" in re.sub(r" +", " ", table(r))
