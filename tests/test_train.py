"""Training: configs, run outputs, exact resume, and the command line's handling of bad input."""
import json

import pytest
import torch
import yaml

from seq2seq_nb.data import ConfigError
from seq2seq_nb.train import CheckpointError, Config, Trainer, load_checkpoint, load_config, make_scheduler, TrainConfig
from conftest import ROOT, quick_overrides, run_cli


@pytest.mark.parametrize("name", ["tiny", "base"])
def test_shipped_configs_load(name):
    cfg = load_config(ROOT/f"configs/{name}.yaml")
    assert isinstance(cfg, Config) and cfg.name == name and cfg.data.src_lang == "en" and cfg.data.tgt_lang == "fr"


def test_run_directory(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert {"best.pt", "last.pt", "config.yaml", "git_hash.txt", "metrics.jsonl", "results.json", "spm.model", "tensorboard"} <= names
    assert any((tiny_run/"tensorboard").iterdir())
    recs = [json.loads(l) for l in (tiny_run/"metrics.jsonl").read_text().splitlines()]
    kinds = {r["kind"] for r in recs}
    assert kinds == {"train", "eval", "test"}
    ev = [r for r in recs if r["kind"] == "eval"]
    assert [r["step"] for r in ev] == [20, 40]
    for k in ("loss", "bleu", "chrf", "unk_rate", "len_ratio", "attn_entropy", "bleu_signature"): assert k in ev[0]
    res = json.loads((tiny_run/"results.json").read_text())
    assert res["steps"] == 40 and res["test"]["beam"] == 2 and "case:mixed" in res["test"]["bleu_signature"]
    ck = load_checkpoint(tiny_run/"last.pt")
    assert ck["progress"]["step"] == 40 and set(ck) >= {"model", "optimizer", "scheduler", "scaler", "rng", "tokenizer", "config"}
    assert yaml.safe_load((tiny_run/"config.yaml").read_text()) == ck["config"]


@pytest.mark.parametrize("extra", [{"train.schedule": "cosine", "train.warmup_steps": 3},
                                   {"train.schedule": "inverse_sqrt", "train.accum_steps": 2, "data.train_subset": 300}])
def test_resume_is_exact(tmp_path, multi30k_cfg, extra):
    "N steps, stop, resume to 2N == 2N steps in one go: same weights and optimizer state, bit for bit."
    def cfg(steps):
        c = load_config(ROOT/"configs/tiny.yaml", quick_overrides(**{"train.max_steps": steps, "train.decay_steps": 12, **extra}))
        c.data.mirror = multi30k_cfg.mirror
        return c
    straight = Trainer(cfg(12), tmp_path/"a", quiet=True); straight.fit()
    Trainer(cfg(6), tmp_path/"b", quiet=True).fit()
    resumed = Trainer(cfg(12), tmp_path/"b", resume=True, quiet=True); resumed.fit()
    assert resumed.step == straight.step == 12
    if "data.train_subset" in extra: assert resumed.epoch >= 1   # the resumed part crossed an epoch boundary
    for k, v in straight.model.state_dict().items(): assert torch.equal(v, resumed.model.state_dict()[k]), k
    a, b = straight.opt.state_dict()["state"], resumed.opt.state_dict()["state"]
    for i in a: assert torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"])


def test_resume_refuses_a_different_model(tiny_run):
    cfg = Config(**{**vars(load_config(tiny_run/"config.yaml"))})
    cfg.model.emb_dim += 1
    with pytest.raises(ConfigError, match="model: differs from the checkpoint's \\(emb_dim\\)"):
        Trainer(cfg, tiny_run, resume=True, quiet=True)


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        Trainer(load_config(ROOT/"configs/tiny.yaml"), tmp_path, resume=True, quiet=True)


def test_schedules_warm_up_and_decay():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    s = make_scheduler(opt, TrainConfig(schedule="cosine", warmup_steps=10, min_lr=0.1), total_steps=110)
    lrs = []
    for _ in range(110): lrs.append(opt.param_groups[0]["lr"]); opt.step(); s.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[10] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a <= b + 1e-12 for a, b in zip(lrs[:10], lrs[1:11])) and all(a >= b - 1e-12 for a, b in zip(lrs[10:], lrs[11:]))


# ---- the command line on bad input: one line on stderr, exit status 2, no traceback ----------------------
def _one_line_error(r, *needles):
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("error: "), err
    for n in needles: assert n in err, err


def test_cli_unknown_key_lists_valid_keys():
    r = run_cli("-m", "seq2seq_nb.train", "--config", "configs/tiny.yaml", "--set", "train.learnig_rate=1e-3")
    _one_line_error(r, "configs/tiny.yaml", "train.learnig_rate: unknown key", "valid keys in 'train': seed")


@pytest.mark.parametrize("override,needle", [("model.cell=rnn", "model.cell: 'rnn' is not a valid choice; valid: 'gru', 'lstm'"),
                                             ("train.lr=-1", "train.lr: must be > 0"),
                                             ("data.vocab_size=lots", "data.vocab_size: 'lots' is not valid: expected int"),
                                             ("train", "--set expects key=value")])
def test_cli_bad_values(override, needle):
    _one_line_error(run_cli("-m", "seq2seq_nb.train", "--config", "configs/tiny.yaml", "--set", override), needle)


def test_cli_missing_and_malformed_config(tmp_path):
    _one_line_error(run_cli("scripts/train.py", "--config", tmp_path/"nope.yaml"), "nope.yaml: no such config file")
    (tmp_path/"bad.yaml").write_text("train:\n  lr: [1,\n")
    _one_line_error(run_cli("scripts/train.py", "--config", tmp_path/"bad.yaml"), "bad.yaml:", "invalid YAML")


def test_cli_bad_data(tmp_path):
    (tmp_path/"s.txt").write_text("a\nb\nc\n"); (tmp_path/"t.txt").write_text("A\nB\n")
    r = run_cli("-m", "seq2seq_nb.train", "--config", "configs/tiny.yaml", "--run-dir", tmp_path/"run",
                "--set", "data.corpus=files", "--set", f"data.train_src={tmp_path/'s.txt'}", "--set", f"data.train_tgt={tmp_path/'t.txt'}")
    _one_line_error(r, "s.txt has 3 lines but", "t.txt has 2")


def test_cli_trains_and_reports(tmp_path):
    r = run_cli("-m", "seq2seq_nb.train", "--config", "configs/tiny.yaml", "--run-dir", tmp_path/"run",
                *sum((["--set", o] for o in quick_overrides(**{"train.max_steps": 4})), []))
    assert r.returncode == 0, r.stderr.decode()
    summary = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert summary["steps"] == 4 and summary["processes"] == 1


def test_bf16_autocast_trains_and_fp16_needs_cuda(tmp_path, multi30k_cfg):
    "The mixed-precision paths on CPU: bf16 autocast trains (and resumes); fp16 without CUDA is refused up front."
    cfg = load_config(ROOT/"configs/tiny.yaml", quick_overrides(**{"train.precision": "bf16", "train.max_steps": 2,
                                                                   "data.max_tokens": 200, "data.train_subset": 200}))
    cfg.data.mirror = multi30k_cfg.mirror
    with pytest.warns(UserWarning, match="bf16|no bf16") if torch.backends.cpu.get_cpu_capability() not in ("AVX512_BF16", "AMX") \
            else __import__("contextlib").nullcontext():
        tr = Trainer(cfg, tmp_path/"bf16", quiet=True)
    res = tr.fit()
    assert res["steps"] == 2 and all(torch.isfinite(p).all() for p in tr.model.parameters())
    assert not tr.scaler.is_enabled()                                  # bf16 needs no loss scaling
    r = run_cli("-m", "seq2seq_nb.train", "--config", "configs/tiny.yaml", "--set", "train.precision=fp16", "--set", "train.device=cpu")
    assert r.returncode == 2 and "train.precision: fp16 needs a CUDA device" in r.stderr.decode()
