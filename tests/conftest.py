"""Shared fixtures. Tests run with one torch thread (2-core machines; see README)."""
import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def _mirror():
    for d in (os.environ.get("SEQ2SEQ_DATA_MIRROR"), ROOT.parent/"shared"/"data"/"multi30k"):
        if d and (Path(d)/"SHA256SUMS").is_file(): return Path(d).resolve()
    return None


@pytest.fixture(scope="session")
def mirror_dir():
    "A local directory mirror of Multi30k (SEQ2SEQ_DATA_MIRROR or ../shared/data/multi30k)."
    d = _mirror()
    if d is None: pytest.skip("needs a local Multi30k mirror (set SEQ2SEQ_DATA_MIRROR to a directory)")
    return d


@pytest.fixture(scope="session")
def multi30k_cfg():
    "DataConfig for Multi30k EN->FR, fetched through the mirror when one is set."
    from seq2seq_nb.data import DataConfig
    return DataConfig(mirror=str(_mirror()) if _mirror() else None)


@pytest.fixture(scope="session")
def small_corpus(multi30k_cfg):
    "The first 2,000 training pairs and the validation set of Multi30k EN->FR."
    from seq2seq_nb.data import load_split
    return load_split(multi30k_cfg, "train").head(2000), load_split(multi30k_cfg, "valid")


@pytest.fixture(scope="session")
def small_tok(small_corpus):
    from seq2seq_nb.data import DataConfig, Tokenizer
    return Tokenizer.train(small_corpus[0], DataConfig(vocab_size=1000))


def cli_env():
    "Environment for CLI subprocesses: one thread, the mirror if there is one."
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", PYTHONWARNINGS="ignore")
    if _mirror(): env["SEQ2SEQ_DATA_MIRROR"] = str(_mirror())
    return env


def run_cli(*args, stdin=None, timeout=300, **kw):
    "Run `python *args` from the repository root; returns the CompletedProcess (bytes)."
    import subprocess, sys
    return subprocess.run([sys.executable, *map(str, args)], input=stdin, capture_output=True, cwd=ROOT,
                           env=cli_env(), timeout=timeout, **kw)


def quick_overrides(**extra):
    "`--set` overrides that shrink configs/tiny.yaml to a few seconds of training."
    o = {"data.train_subset": 800, "data.valid_subset": 40, "data.vocab_size": 500, "train.max_epochs": 0,
         "train.max_steps": 8, "train.test_beam": 0, "train.tensorboard": False, "train.log_every": 2}
    o.update(extra)
    return [f"{k}={v}" for k, v in o.items()]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, multi30k_cfg):
    "A finished tiny training run (about 10 s): its run directory."
    from seq2seq_nb.train import Trainer, load_config
    run_dir = tmp_path_factory.mktemp("runs")/"tiny"
    cfg = load_config(ROOT/"configs/tiny.yaml", quick_overrides(**{"train.max_steps": 40, "train.tensorboard": True,
                                                                   "train.eval_every": 20, "train.test_beam": 2}))
    cfg.data.mirror = multi30k_cfg.mirror
    Trainer(cfg, run_dir, quiet=True).fit()
    return run_dir
