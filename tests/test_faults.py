"""Faults: killed runs resume from last.pt, NaN losses stop cleanly, checkpoints are never trusted blindly."""
import os, re, signal, subprocess, sys, time

import pytest
import torch

from seq2seq_nb.train import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, save_checkpoint
from conftest import ROOT, cli_env, quick_overrides, run_cli


def _train_args(run_dir, **extra):
    return ["-m", "seq2seq_nb.train", "--config", "configs/tiny.yaml", "--run-dir", str(run_dir),
            *sum((["--set", o] for o in quick_overrides(**extra)), [])]


def _wait_for(cond, timeout=120):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout: raise TimeoutError
        time.sleep(0.05)


def test_sigkill_leaves_a_loadable_checkpoint_and_resume_finishes(tmp_path):
    run = tmp_path/"run"
    p = subprocess.Popen([sys.executable, *_train_args(run, **{"train.max_steps": 400, "train.save_every": 1})],
                         cwd=ROOT, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: (run/"last.pt").exists())
        time.sleep(1.5)                                   # checkpoints are being written every step: kill mid-flight
        os.kill(p.pid, signal.SIGKILL); p.wait()
    finally:
        if p.poll() is None: p.kill()
    ck = load_checkpoint(run/"last.pt")                   # never half-written
    step = ck["progress"]["step"]
    assert step >= 1
    r = run_cli(*_train_args(run, **{"train.max_steps": step + 3}), "--resume")
    assert r.returncode == 0, r.stderr.decode()
    assert f"resumed from {run/'last.pt'} at step {step}" in r.stdout.decode()
    assert load_checkpoint(run/"last.pt")["progress"]["step"] == step + 3


def test_sigterm_writes_last_checkpoint_and_exits(tmp_path):
    run = tmp_path/"run"
    p = subprocess.Popen([sys.executable, *_train_args(run, **{"train.max_steps": 400, "train.save_every": 5})],
                         cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(lambda: (run/"last.pt").exists())
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err.decode()
    assert "finishing this step, writing last.pt" in err.decode()
    assert 1 <= load_checkpoint(run/"last.pt")["progress"]["step"] < 400
    assert not (run/"results.json").exists()                              # not finished: no results (only last.pt)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    run = tmp_path/"run"
    r = run_cli(*_train_args(run, **{"train.lr": 1e25, "train.warmup_steps": 0, "train.clip_norm": 0, "train.save_every": 1,
                                     "train.max_steps": 50}))
    err = r.stderr.decode()
    assert r.returncode == 3, err
    assert "Traceback" not in err and "the training loss is" in err and "last good checkpoint" in err
    failed = int(re.search(r"step (\d+): the training loss is (nan|inf|-inf)", err).group(1))
    assert failed >= 2
    assert load_checkpoint(run/"last.pt")["progress"]["step"] == failed - 1   # the bad step wrote nothing


@pytest.fixture
def good_ckpt(tmp_path):
    p = tmp_path/"good.pt"
    save_checkpoint(p, {"model": {"w": torch.randn(50, 50)}, "config": {}, "tokenizer": {}})
    return p


def test_truncated_checkpoint(good_ckpt):
    bad = good_ckpt.with_name("trunc.pt"); bad.write_bytes(good_ckpt.read_bytes()[:-300])
    with pytest.raises(CheckpointError, match="truncated or corrupted"): load_checkpoint(bad)


def test_corrupted_checkpoint(good_ckpt):
    data = bytearray(good_ckpt.read_bytes())
    for i in range(0, len(data), 97): data[i] ^= 0xFF
    bad = good_ckpt.with_name("corrupt.pt"); bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated or corrupted"): load_checkpoint(bad)


def test_checkpoint_of_another_format(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path/"other.pt")
    with pytest.raises(CheckpointError, match="not a seq2seq_nb.checkpoint/1 checkpoint"): load_checkpoint(tmp_path/"other.pt")
    (tmp_path/"text.pt").write_text("hello")
    with pytest.raises(CheckpointError): load_checkpoint(tmp_path/"text.pt")


class _Payload:
    def __init__(self, target): self.target = target
    def __reduce__(self): return (open, (self.target, "w"))            # creates a file when unpickled


def test_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    target = tmp_path/"created-by-unpickling"
    torch.save({"format": CHECKPOINT_FORMAT, "model": {}, "x": _Payload(str(target))}, tmp_path/"evil.pt")
    with pytest.raises(CheckpointError, match="refused: it contains Python objects that could run code"):
        load_checkpoint(tmp_path/"evil.pt")
    assert not target.exists()
    r = run_cli("scripts/translate.py", "--ckpt", tmp_path/"evil.pt", "--src", "-", stdin=b"hello\n")
    err = r.stderr.decode()
    assert r.returncode == 2 and "refused" in err and "Traceback" not in err and err.count("\n") == 1
    assert not target.exists()


def test_atomic_save_keeps_the_old_file_when_interrupted(tmp_path, good_ckpt, monkeypatch):
    before = good_ckpt.read_bytes()
    def boom(*a, **k): raise OSError("disk full")
    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError): save_checkpoint(good_ckpt, {"model": {}})
    assert good_ckpt.read_bytes() == before and [p.name for p in good_ckpt.parent.iterdir()] == ["good.pt"]
