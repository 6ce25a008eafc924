"""Training: configs, run outputs, exact resume, and the command line's handling of bad input."""
import json

import pytest
import torch
import yaml

from seq2seq_nb.data import ConfigError
from seq2seq_nb.train import (CheckpointError, Config, Trainer, load_checkpoint, load_config, lr_factor, make_scheduler, planned_steps,
                              TrainConfig)
from conftest import ROOT, quick_overrides, run_cli


@pytest.mark.parametrize("name", ["tiny", "base", "bahdanau", "base_transformer_10ep", "best"])
def test_shipped_configs_load(name):
    cfg = load_config(ROOT/f"configs/{name}.yaml")
    assert isinstance(cfg, Config) and cfg.name == name and cfg.data.src_lang == "en" and cfg.data.tgt_lang == "fr"


def test_the_base_is_the_transformer_on_the_rnn_budget_and_data():
    "configs/base.yaml (the Transformer) replaced the series' RNN (bahdanau.yaml) on equal terms: the same data, 60 minutes, beam 5 on test."
    rnn, base = load_config(ROOT/"configs/bahdanau.yaml"), load_config(ROOT/"configs/base.yaml")
    assert base.data == rnn.data and base.model.arch == "transformer" and rnn.model.arch == "attention"
    t, b = base.train, rnn.train
    assert t.max_minutes == b.max_minutes == 60 and (t.test_beam, t.alpha, t.seed, t.precision) == (b.test_beam, b.alpha, b.seed, b.precision)
    assert t.schedule == "inverse_sqrt" and t.max_epochs >= 30 and not t.max_steps   # stopped by the clock, not by a horizon


def test_the_equal_compute_candidate_anneals_within_the_rnn_epochs():
    """configs/base_transformer_10ep.yaml: the RNN's data, budget and test search; a cosine schedule whose horizon is its own
    10 epochs (fewer than the RNN's 13, which take about as long), so the learning rate reaches its floor by the last update."""
    rnn, cand = load_config(ROOT/"configs/bahdanau.yaml"), load_config(ROOT/"configs/base_transformer_10ep.yaml")
    t, b = cand.train, rnn.train
    assert cand.data == rnn.data and cand.model.arch == "transformer" and cand.model.transformer == load_config(ROOT/"configs/base.yaml").model.transformer
    assert t.max_minutes == b.max_minutes == 60 and (t.test_beam, t.alpha, t.seed, t.precision) == (b.test_beam, b.alpha, b.seed, b.precision)
    assert t.schedule == b.schedule == "cosine" and t.max_epochs == 10 < b.max_epochs and not (t.max_steps or t.decay_steps)
    spe = 259                                                   # 29,000 pairs at 2,000 tokens (the runs' logs)
    horizon = planned_steps(t, spe)
    f = lr_factor(t, horizon)
    assert horizon == 10 * spe and f(horizon - 1) < 1e-4 and f(horizon) == f(horizon + 500) == t.min_lr / t.lr


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
    s = make_scheduler(opt, TrainConfig(schedule="cosine", lr=1.0, warmup_steps=10, min_lr=0.1), total_steps=110)
    lrs = []
    for _ in range(110): lrs.append(opt.param_groups[0]["lr"]); opt.step(); s.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[10] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a <= b + 1e-12 for a, b in zip(lrs[:10], lrs[1:11])) and all(a >= b - 1e-12 for a, b in zip(lrs[10:], lrs[11:]))


@pytest.mark.parametrize("schedule", ["cosine", "inverse_sqrt", "constant"])
def test_schedules_never_restart_past_their_horizon(schedule):
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    s = make_scheduler(opt, TrainConfig(schedule=schedule, lr=1.0, warmup_steps=10, min_lr=0.1), total_steps=100)
    lrs = []
    for _ in range(1000): lrs.append(opt.param_groups[0]["lr"]); opt.step(); s.step()
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))               # after warmup: never up again
    at, beyond = lrs[100], lrs[100:]
    if schedule == "cosine": assert at == pytest.approx(0.1) and all(lr == pytest.approx(0.1) for lr in beyond)
    if schedule == "inverse_sqrt": assert at == pytest.approx((10 / 101) ** 0.5) and lrs[999] == pytest.approx((10 / 1000) ** 0.5)
    if schedule == "constant": assert all(lr == 1.0 for lr in lrs[9:])


def test_horizon_is_the_planned_length_not_a_stop_limit():
    assert planned_steps(TrainConfig(max_epochs=3, max_steps=20, max_minutes=1), steps_per_epoch=14) == 42
    assert planned_steps(TrainConfig(max_epochs=3, decay_steps=100), 14) == 100
    assert planned_steps(TrainConfig(max_epochs=0, max_steps=20), 14) == 20
    with pytest.raises(ConfigError, match="decay_steps: a cosine schedule needs the run's planned length"):
        TrainConfig(max_epochs=0, max_minutes=5)
    assert planned_steps(TrainConfig(schedule="inverse_sqrt", max_epochs=0, max_minutes=5), 14) == 0   # needs none


SMALL = ["data.train_subset=400", "data.valid_subset=20", "data.vocab_size=300", "train.test_beam=0", "train.tensorboard=false"]


def _tiny(multi30k_cfg, *extra):
    c = load_config(ROOT/"configs/tiny.yaml", SMALL + list(extra)); c.data.mirror = multi30k_cfg.mirror
    return c


def test_readme_resume_promise_on_the_shipped_tiny_config(tmp_path, multi30k_cfg):
    "configs/tiny.yaml as shipped (cosine over 3 epochs): 20 steps, then --resume to 40 == 40 steps in one go, bit for bit."
    straight = Trainer(_tiny(multi30k_cfg, "train.max_steps=40"), tmp_path/"a", quiet=True); straight.fit()
    Trainer(_tiny(multi30k_cfg, "train.max_steps=20"), tmp_path/"b", quiet=True).fit()
    import shutil; shutil.copytree(tmp_path/"b", tmp_path/"longer"); shutil.copytree(tmp_path/"b", tmp_path/"shorter")
    resumed = Trainer(_tiny(multi30k_cfg, "train.max_steps=40"), tmp_path/"b", resume=True, quiet=True); resumed.fit()
    assert straight.total_steps == resumed.total_steps == 3 * straight.steps_per_epoch > 40 and resumed.step == 40
    for k, v in straight.model.state_dict().items(): assert torch.equal(v, resumed.model.state_dict()[k]), k
    # training pairs longer than max_len are dropped, not clipped
    assert straight.enc_train.n_dropped > 0 and max(map(len, straight.enc_train.tgt)) < straight.cfg.data.max_len

    # a changed planned length: the schedule is rebuilt from the new config at the restored step
    spe = straight.steps_per_epoch
    for name, plan, horizon in (("longer", "train.max_epochs=5", 5 * spe), ("shorter", "train.decay_steps=34", 34)):
        cfg = _tiny(multi30k_cfg, plan, "train.max_steps=36", "train.log_every=1")
        tr = Trainer(cfg, tmp_path/name, resume=True, quiet=True); tr.fit()
        f, lr = lr_factor(cfg.train, horizon), cfg.train.lr
        lrs = {r["step"]: r["lr"] for r in tr.history if r["kind"] == "train" and r["step"] > 20}
        assert tr.total_steps == horizon and sorted(lrs) == list(range(21, 37)) and all(v == lr * f(s) for s, v in lrs.items()), lrs
        if name == "shorter": assert all(lrs[s] == cfg.train.min_lr for s in (34, 35, 36))   # past the new horizon


def test_tensorboard_with_a_dev_set_of_two_sentences(tmp_path, multi30k_cfg):
    tr = Trainer(_tiny(multi30k_cfg, "data.valid_subset=2", "train.tensorboard=true", "train.max_steps=2", "train.max_epochs=0"),
                 tmp_path/"run", quiet=True)
    assert tr.fit()["steps"] == 2 and any((tmp_path/"run"/"tensorboard").iterdir())


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
    from seq2seq_nb.core import bf16_is_faster                       # the warning follows the measurement, not the CPU's name
    with pytest.warns(UserWarning, match="bf16 runs slower than fp32") if not bf16_is_faster(torch.device("cpu")) \
            else __import__("contextlib").nullcontext():
        tr = Trainer(cfg, tmp_path/"bf16", quiet=True)
    res = tr.fit()
    assert res["steps"] == 2 and all(torch.isfinite(p).all() for p in tr.model.parameters())
    assert not tr.scaler.is_enabled()                                  # bf16 needs no loss scaling
    r = run_cli("-m", "seq2seq_nb.train", "--config", "configs/tiny.yaml", "--set", "train.precision=fp16", "--set", "train.device=cpu")
    assert r.returncode == 2 and "train.precision: fp16 needs a CUDA device" in r.stderr.decode()


def test_cli_cosine_run_known_only_in_minutes():
    r = run_cli("-m", "seq2seq_nb.train", "--config", "configs/tiny.yaml", "--set", "train.max_epochs=0", "--set", "train.max_minutes=1")
    _one_line_error(r, "train.decay_steps: a cosine schedule needs the run's planned length", "train.max_epochs", "train.max_steps")


def test_cli_own_files_with_the_multi30k_corpus_is_an_error(tmp_path):
    (tmp_path/"s.txt").write_text("a\n" * 100); (tmp_path/"t.txt").write_text("A\n" * 99)
    r = run_cli("-m", "seq2seq_nb.train", "--config", "configs/tiny.yaml", "--run-dir", tmp_path/"run",
                "--set", f"data.train_src={tmp_path/'s.txt'}", "--set", f"data.train_tgt={tmp_path/'t.txt'}")
    _one_line_error(r, "data.train_src: is set but data.corpus is multi30k", "data.corpus=files")


def test_cli_refuses_a_directory_holding_a_run_unless_overwrite(tmp_path):
    run = tmp_path/"run"; run.mkdir()
    (run/"metrics.jsonl").write_text('{"kind": "eval", "step": 999}\n'); (run/"last.pt").write_bytes(b"another run")
    args = ["-m", "seq2seq_nb.train", "--config", "configs/tiny.yaml", "--run-dir", run,
            *sum((["--set", o] for o in quick_overrides(**{"train.max_steps": 2})), [])]
    _one_line_error(run_cli(*args), f"{run} already holds a run (last.pt, metrics.jsonl)", "--resume", "--run-dir", "--overwrite")
    assert (run/"last.pt").read_bytes() == b"another run"
    r = run_cli(*args, "--overwrite")
    assert r.returncode == 0, r.stderr.decode()
    steps = [json.loads(l)["step"] for l in (run/"metrics.jsonl").read_text().splitlines()]
    assert 999 not in steps and load_checkpoint(run/"last.pt")["progress"]["step"] == 2


def test_precision_auto_follows_the_probe(monkeypatch):
    "precision: auto is bf16 exactly where the measured bf16 matmul beats fp32; asking for bf16 where it loses warns."
    import seq2seq_nb.core as core
    for rates, want in (((100.0, 20.0), "fp32"), ((80.0, 190.0), "bf16")):
        monkeypatch.setitem(core._BF16_PROBE, "cpu", rates)
        t = TrainConfig(precision="auto", device="cpu")
        core.setup_runtime(t)
        assert t.precision == want
    monkeypatch.setitem(core._BF16_PROBE, "cpu", (100.0, 20.0))
    with pytest.warns(UserWarning, match="bf16 runs slower than fp32 on this cpu"): core.setup_runtime(TrainConfig(precision="bf16", device="cpu"))


def test_transformer_needs_a_joint_vocabulary():
    with pytest.raises(ConfigError, match="data.joint_vocab: arch transformer shares one embedding"):
        load_config(ROOT/"configs/tiny_transformer.yaml", ["data.joint_vocab=false"])


def test_init_from_a_denoising_pretraining(tmp_path, multi30k_cfg):
    "Pretrain as a denoising autoencoder on other pairs, then fine-tune from its weights and subword model."
    def cfg(*o):
        c = load_config(ROOT/"configs/tiny.yaml", quick_overrides(**{"train.max_steps": 3}) + list(o))
        c.data.mirror = multi30k_cfg.mirror
        return c
    pre = Trainer(cfg("data.denoise=true", "data.train_skip=300", "data.train_subset=200"), tmp_path/"pre", quiet=True)
    pre.fit()
    assert len(pre.enc_train) > 200                                     # both sides of 200 pairs, each its own example
    ckpt = load_checkpoint(tmp_path/"pre"/"last.pt")
    fine = Trainer(cfg("data.train_subset=300", f"train.init_from={tmp_path/'pre'/'last.pt'}"), tmp_path/"fine", quiet=True)
    assert fine.tok.state_dict() == ckpt["tokenizer"]                    # the pretraining's subwords, not new ones
    for k, v in ckpt["model"].items(): assert torch.equal(fine.model.state_dict()[k], v), k
    fine.fit()
    assert fine.step == 3
    with pytest.raises(ConfigError, match="train.init_from: .*its model differs from this config's \\(emb_dim\\)"):
        Trainer(cfg("model.emb_dim=64", f"train.init_from={tmp_path/'pre'/'last.pt'}"), tmp_path/"other", quiet=True)


def test_checkpoint_time_includes_the_evaluation_that_wrote_it(tmp_path, multi30k_cfg, monkeypatch):
    "A resumed run counts the time of the evaluation that wrote last.pt (its time budget and wall_minutes lose nothing)."
    import time
    from seq2seq_nb import train
    real = train.Trainer.evaluate_and_checkpoint
    def slow_eval(self, *a, **k): time.sleep(1.5); return real(self, *a, **k)        # an evaluation that takes 1.5 s
    monkeypatch.setattr(train.Trainer, "evaluate_and_checkpoint", slow_eval)
    cfg = load_config(ROOT/"configs/tiny.yaml", quick_overrides(**{"train.max_steps": 4, "train.eval_every": 4}))
    cfg.data.mirror = multi30k_cfg.mirror
    res = Trainer(cfg, tmp_path/"run", quiet=True).fit()
    saved = load_checkpoint(tmp_path/"run"/"last.pt")["progress"]["train_time"]
    assert res["wall_minutes"] * 60 - saved < 0.9, (res["wall_minutes"], saved)         # was short by the 1.5 s evaluation
    resumed = Trainer(cfg, tmp_path/"run", resume=True, quiet=True)
    assert abs(resumed.train_time - saved) < 1e-6                                      # the resumed clock starts at the checkpoint's
    again = resumed.fit()
    assert again["reason"] == "already finished" and abs(resumed.train_time / 60 - res["wall_minutes"]) <= 0.02


def test_setup_runtime_on_cuda_sets_tf32_by_precision_and_still_warns_on_slow_bf16(monkeypatch):
    "fp32 on CUDA turns TF32 off (matmul and cuDNN); bf16 on a GPU without bf16 still gets the warning. CUDA is faked."
    import warnings
    from seq2seq_nb.core import setup_runtime
    from seq2seq_nb.train import TrainConfig
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    import seq2seq_nb.core as core
    monkeypatch.setitem(core._BF16_PROBE, "cuda", (100.0, 0.0))  # the probe's result on a GPU without bf16 (no GPU to time here)
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda *a, **k: None)
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = True
        assert setup_runtime(TrainConfig(device="cuda", precision="fp32", threads=1)).type == "cuda"
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            setup_runtime(TrainConfig(device="cuda", precision="bf16", threads=1))
        assert any("bf16 runs slower" in str(x.message) for x in w)
        assert torch.backends.cudnn.allow_tf32                      # mixed precision: TF32 allowed again
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_a_stopped_run_is_not_scored_a_finished_one_is_scored_once(tmp_path, small_corpus):
    """A signal stop writes last.pt only: no test score, no results.json (the grid took a stopped run's results.json
    for a finished one). The run that ends is scored once: resuming it when finished returns the saved results and
    adds no second test record (runs/base had two). Resuming it with a larger limit drops the now stale results."""
    train, valid = small_corpus
    files = {}
    for split, c in {"train": train.head(800), "valid": valid.head(20), "test": valid.head(12)}.items():
        files[split] = tmp_path/f"{split}.tsv"
        files[split].write_text("".join(f"{s}\t{t}\n" for s, t in zip(c.src, c.tgt)))
    def cfg(steps):
        return load_config(ROOT/"configs/tiny.yaml", quick_overrides(**{
            "data.corpus": "files", **{f"data.{s}_src": str(p) for s, p in files.items()}, "data.valid_subset": 0,
            "train.max_steps": steps, "train.eval_every": 2, "train.test_beam": 2}))
    def stop_at(step):
        def cb(trainer, rec):
            if rec["step"] == step: trainer.stop_requested = True
        return [cb]
    run = tmp_path/"run"
    records = lambda kind: [json.loads(l) for l in (run/"metrics.jsonl").read_text().splitlines() if f'"kind": "{kind}"' in l]

    res = Trainer(cfg(6), run, callbacks=stop_at(2), quiet=True).fit()
    assert res["reason"] == "stop requested" and res["steps"] == 2 and "test" not in res
    assert not (run/"results.json").exists() and records("test") == []
    assert load_checkpoint(run/"last.pt")["progress"]["step"] == 2

    done = Trainer(cfg(6), run, resume=True, quiet=True).fit()
    assert done["reason"] == "limit reached" and done["steps"] == 6 and "test" in done
    starts = (run/"git_hash.txt").read_text().splitlines()                # one line per start, the earlier kept
    assert [l.split(" ", 1)[1] for l in starts] == ["from step 0 (fp32)", "from step 2 (fp32)"] and starts[0].split()[0] == done["git"]
    assert json.loads((run/"results.json").read_text()) == done and len(records("test")) == 1

    again = Trainer(cfg(6), run, resume=True, quiet=True).fit()
    assert again == {**done, "reason": "already finished"} and len(records("test")) == 1

    longer = Trainer(cfg(10), run, resume=True, callbacks=stop_at(8), quiet=True).fit()
    assert longer["reason"] == "stop requested" and longer["steps"] == 8
    assert not (run/"results.json").exists()                             # it described the end at step 6


def test_a_signal_in_the_limits_last_step_still_gets_the_final_evaluation_on_resume(tmp_path, multi30k_cfg):
    """A signal that arrives during the step that reaches the limit (here step 5, between the evaluations at 4 and 6)
    stops the run there unevaluated; resuming it finds it finished and must still evaluate step 5 and write its results
    (the old code skipped the evaluation of an 'already finished' run: best.pt missed step 5, and no results.json)."""
    cfg = load_config(ROOT/"configs/tiny.yaml", quick_overrides(**{"train.max_steps": 5, "train.eval_every": 2}))
    cfg.data.mirror = multi30k_cfg.mirror
    run = tmp_path/"run"
    t = Trainer(cfg, run, quiet=True)
    step = t.train_step
    def signalled_at_5(group):
        out = step(group)
        if t.step == 4: t.stop_requested = True                          # fit counts this step as 5
        return out
    t.train_step = signalled_at_5
    res = t.fit()
    assert (res["reason"], res["steps"], t.last_eval_step) == ("stop requested", 5, 4) and not (run/"results.json").exists()
    again = Trainer(cfg, run, resume=True, quiet=True).fit()
    evals = [json.loads(l)["step"] for l in (run/"metrics.jsonl").read_text().splitlines() if '"kind": "eval"' in l]
    assert again["reason"] == "already finished" and evals[-1] == 5 and evals.count(5) == 1
    assert json.loads((run/"results.json").read_text())["steps"] == 5
