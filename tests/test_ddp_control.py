"""Multi-process training (2 gloo processes under torchrun) ends the same way on every rank, in every way a run can end.

Each case runs `torchrun --standalone --nproc_per_node=2 -m seq2seq_nb.train` on configs/tiny.yaml with small data
(`SMALL`), with a timeout: a rank waiting for a collective that the other never joins shows up as a timeout, not a hang.
Two cases run the shipped configs/base.yaml instead (a Transformer stopped by the clock or by patience) with a small model."""
import json, re, signal, subprocess, sys, time

import pytest
import torch

from seq2seq_nb.train import load_checkpoint
from conftest import ROOT, cli_env

SMALL = {"data.train_subset": 400, "data.valid_subset": 20, "data.vocab_size": 300, "train.test_beam": 0,
         "train.tensorboard": False}


def _args(run_dir, module="seq2seq_nb.train", config="configs/tiny.yaml", **extra):
    o = {**SMALL, **extra}
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", module,
            "--config", config, "--run-dir", str(run_dir), *sum((["--set", f"{k}={v}"] for k, v in o.items()), [])]


def _run(args, timeout=120, env=None):
    "Run torchrun; once more if the port it picked was taken meanwhile (a torchrun race on a shared machine)."
    for attempt in (1, 2):
        r = subprocess.run(args, cwd=ROOT, env=env or cli_env(), capture_output=True, timeout=timeout)
        if r.returncode == 0 or b"EADDRINUSE" not in r.stderr and b"Address already in use" not in r.stderr: break
    return r


def _torchrun(run_dir, timeout=120, config="configs/tiny.yaml", **extra):
    r = _run(_args(run_dir, config=config, **extra), timeout)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def _results(run_dir):
    assert [p.name for p in run_dir.glob("results*.json")] == ["results.json"]
    return json.loads((run_dir/"results.json").read_text())


def _evals(run_dir):
    return [json.loads(l)["step"] for l in (run_dir/"metrics.jsonl").read_text().splitlines() if '"kind": "eval"' in l]


def test_shipped_tiny_config_per_epoch_evaluation_to_max_epochs(tmp_path):
    "The tiny config as shipped: an evaluation at each epoch's end, the last one also ending the run."
    rc, out, err = _torchrun(tmp_path/"run")
    assert rc == 0, err[-3000:]
    res = _results(tmp_path/"run")
    assert res["reason"] == "limit reached" and res["epochs"] == 3 and res["processes"] == 2
    spe = res["steps"] // 3
    assert _evals(tmp_path/"run") == [spe, 2 * spe, 3 * spe]            # one evaluation per epoch, none twice


def test_early_stopping_by_patience(tmp_path):
    rc, out, err = _torchrun(tmp_path/"run", **{"train.patience": 1, "train.eval_every": 1, "train.lr": 1e-6})
    assert rc == 0, err[-3000:]
    res = _results(tmp_path/"run")
    assert res["reason"] == "early stopping" and _evals(tmp_path/"run") == list(range(1, res["steps"] + 1))


def test_max_minutes_budget(tmp_path):
    "The budget runs out right after an evaluation (one at every step): no rank may go for a final one alone."
    rc, out, err = _torchrun(tmp_path/"run", **{"train.max_minutes": 0.02, "train.max_epochs": 1000, "train.eval_every": 1})
    assert rc == 0, err[-3000:]
    res = _results(tmp_path/"run")
    assert res["reason"] == "limit reached" and res["steps"] >= 1 and res["wall_minutes"] >= 0.02
    assert _evals(tmp_path/"run") == list(range(1, res["steps"] + 1))  # each step evaluated once, no extra final one


SMALL_TRANSFORMER = {"model.transformer.d_model": 32, "model.transformer.ff_dim": 64, "model.transformer.heads": 2,
                     "model.transformer.enc_layers": 1, "model.transformer.dec_layers": 1}


@pytest.mark.parametrize("end", ["clock", "patience"])
def test_the_shipped_base_config_ends_alike_on_every_rank(tmp_path, end):
    """configs/base.yaml as shipped (the Transformer, an evaluation at each epoch's end, stopped by `train.max_minutes` or by
    patience 5), with a small model: by the clock (patience off so that it cannot come first), wherever in an epoch the budget
    runs out, with one final evaluation at most; by patience (a learning rate too small to improve), after 1 + 5 evaluations."""
    extra = {"train.max_minutes": 0.05, "train.patience": 0} if end == "clock" else {"train.lr": 1e-6}
    rc, out, err = _torchrun(tmp_path/"run", config="configs/base.yaml", **SMALL_TRANSFORMER, **extra)
    assert rc == 0, err[-3000:]
    res, ev = _results(tmp_path/"run"), _evals(tmp_path/"run")
    assert res["processes"] == 2 and ev == sorted(set(ev)) and ev[-1] == res["steps"]   # none twice; the last at the end
    if end == "clock": assert res["reason"] == "limit reached" and res["wall_minutes"] >= 0.05 and res["epochs"] < 40 and len(ev) >= 2
    else: assert res["reason"] == "early stopping" and len(ev) == 6 and res["wall_minutes"] < 60


def test_max_steps_a_multiple_of_eval_every_and_exact_resume(tmp_path):
    "N steps + resume to 2N == 2N steps, with dropout: each rank gets its own random state back."
    drop = {"model.dropout_emb": 0.2, "model.dropout_rnn": 0.2, "train.eval_every": 3}
    rc, _, err = _torchrun(tmp_path/"straight", **drop, **{"train.max_steps": 6})
    assert rc == 0, err[-3000:]
    assert _results(tmp_path/"straight")["steps"] == 6 and _evals(tmp_path/"straight") == [3, 6]
    rc, _, err = _torchrun(tmp_path/"resumed", **drop, **{"train.max_steps": 3})
    assert rc == 0, err[-3000:]
    ck = load_checkpoint(tmp_path/"resumed"/"last.pt")
    assert len(ck["rng_ranks"]) == 2 and not torch.equal(ck["rng_ranks"][0]["torch"], ck["rng_ranks"][1]["torch"])
    r = _run(_args(tmp_path/"resumed", **drop, **{"train.max_steps": 6}) + ["--resume"])
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    a, b = load_checkpoint(tmp_path/"straight"/"last.pt")["model"], load_checkpoint(tmp_path/"resumed"/"last.pt")["model"]
    for k in a: assert torch.equal(a[k], b[k]), k


def test_sigterm_to_torchrun_stops_both_ranks_after_the_step(tmp_path):
    "torchrun forwards SIGTERM to both workers: they agree to stop after the same step, and rank 0 writes last.pt once."
    run = tmp_path/"run"
    p = subprocess.Popen(_args(run, **{"train.max_epochs": 1000, "train.save_every": 1}), cwd=ROOT, env=cli_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        t0 = time.time()
        while not (run/"last.pt").exists():
            assert p.poll() is None and time.time() - t0 < 90, "the run ended or never saved"
            time.sleep(0.1)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None: p.kill()
    out, err = out.decode(), err.decode()
    for rank in (0, 1): assert f"signal 15 (rank {rank}): finishing this step" in err, err[-3000:]
    assert not (run/"results.json").exists()                             # a stopped run is not finished
    res = json.loads(next(l for l in reversed(out.splitlines()) if l.startswith("{")))   # rank 0's summary line
    assert res["reason"] == "stop requested" and load_checkpoint(run/"last.pt")["progress"]["step"] == res["steps"]
    assert "ChildFailedError" not in err and "exitcode" not in err, err[-3000:]     # no worker failed
    # the workers exit 0; torchrun itself re-raises the signal it got once they are done (torch elastic's design)
    assert p.returncode == 0 or "SignalException" in err, err[-3000:]
    assert not list(run.glob(".*.tmp"))


def test_non_finite_loss_on_one_rank_stops_every_rank(tmp_path):
    r = _run(_args(tmp_path/"run", module="ddp_nan_rank1", **{"train.log_every": 1}), env=cli_env() | {"PYTHONPATH": f"{ROOT/'tests'}"})
    err = r.stderr.decode()
    msgs = re.findall(r"error: (step \d+: the training loss is \S+ \(summed over 2 processes\))", err)  # lines may interleave
    # rank 0, whose own loss is finite, stops with rank 1's message at the same step (before the fix it crashed in
    # backward once rank 1 had left); torchrun may then terminate the last one during its exit (status -15)
    assert len(msgs) == 2 and msgs[0] == msgs[1] and "the training loss is inf" in msgs[0], err[-3000:]
    assert "[rank0]" not in err and "[rank1]" not in err, err[-3000:]     # no traceback from a worker
    assert "exitcode  : 3" in err.split("Root Cause")[-1], err[-3000:]     # the non-finite-loss status
    assert not (tmp_path/"run"/"results.json").exists()


def test_shard_without_batches_is_an_error_before_training(tmp_path):
    rc, out, err = _torchrun(tmp_path/"run", **{"data.train_subset": 3})
    assert rc != 0 and "error: 3 training pairs make 1 batch(es) of data.max_tokens=1000, fewer than the 2 processes" in err, err[-3000:]
    assert "exitcode  : 2" in err.split("Root Cause")[-1] and not (tmp_path/"run"/"last.pt").exists()


def test_leaving_the_group_frees_ddp_first_and_waits_only_when_every_rank_ended_alike(tmp_path, monkeypatch):
    "The teardown `main` runs on every way out: DDP's reducer (which holds the group) is freed before the group is."
    import gc, weakref
    import torch.distributed as dist
    from seq2seq_nb import train
    dist.init_process_group("gloo", init_method=f"file://{tmp_path/'store'}", rank=0, world_size=1)
    try:
        class T: pass
        for together in (True, False):
            if not dist.is_initialized(): dist.init_process_group("gloo", init_method=f"file://{tmp_path/f'store{together}'}", rank=0, world_size=1)
            t = T(); t.ddp = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 2))
            t.ddp(torch.randn(4, 3)).sum().backward()
            alive, barriers, seen = weakref.ref(t.ddp), [], []
            monkeypatch.setattr(dist, "barrier", lambda *a, **k: barriers.append(1))
            real = dist.destroy_process_group
            monkeypatch.setattr(dist, "destroy_process_group", lambda *a: (seen.append(alive() is None), real(*a)))
            train._leave_process_group(t, together)
            assert t.ddp is None and seen == [True] and not dist.is_initialized()
            assert barriers == ([1] if together else [])
            monkeypatch.undo()
    finally:
        if dist.is_initialized(): dist.destroy_process_group()
    train._leave_process_group(None, True)                  # no group (one process): nothing to do, no error
