"""DDP with two CPU processes (gloo): it runs, only rank 0 writes, and it equals gradient accumulation."""
import json

import torch

from seq2seq_nb.train import Trainer, load_checkpoint, load_config
from conftest import ROOT, quick_overrides, run_cli


def test_two_processes_equal_one_process_accumulating_their_batches(tmp_path, multi30k_cfg):
    o = quick_overrides(**{"train.max_steps": 4, "model.dropout_emb": 0.0, "model.dropout_rnn": 0.0, "data.max_tokens": 600,
                           "train.warmup_steps": 2})
    r = run_cli("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "seq2seq_nb.train",
                "--config", "configs/tiny.yaml", "--run-dir", tmp_path/"ddp", *sum((["--set", x] for x in o), []), timeout=600)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    res = json.loads((tmp_path/"ddp"/"results.json").read_text())
    assert res["processes"] == 2 and res["steps"] == 4
    assert r.stdout.decode().count("model: attention") == 1            # only rank 0 talks (and writes)
    ddp = load_checkpoint(tmp_path/"ddp"/"last.pt")["model"]
    # one process, accumulating the two batches that the two ranks took at each step
    cfg = load_config(ROOT/"configs/tiny.yaml", o + ["train.accum_steps=2"]); cfg.data.mirror = multi30k_cfg.mirror
    single = Trainer(cfg, tmp_path/"single", quiet=True)
    single.fit()
    for k, v in single.model.state_dict().items():
        assert torch.allclose(v, ddp[k], atol=1e-5), k
    # the logged training loss is the mean over all ranks' tokens, as if one process had seen both batches
    logged = [json.loads(l) for l in (tmp_path/"ddp"/"metrics.jsonl").read_text().splitlines()]
    ddp_loss = [r["loss"] for r in logged if r["kind"] == "train"]
    single_loss = [r["loss"] for r in single.history if r["kind"] == "train"]
    assert len(ddp_loss) == len(single_loss) == 2 and all(abs(a - b) < 1e-4 for a, b in zip(ddp_loss, single_loss)), (ddp_loss, single_loss)
