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
