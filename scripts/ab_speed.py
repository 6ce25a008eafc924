#!/usr/bin/env python
"""Speed of this checkout against an earlier revision, side by side in one run.

  python scripts/ab_speed.py --rev d46ccd6 [--task train|decode] [--config configs/bahdanau.yaml] [--rounds 5] [--threads 2]

Checks the revision out into a temporary git worktree, then alternates the measurement between the two
trees, round after round, so that drift in the machine's speed hits both equally; prints the per-round
figures, the medians and their ratio, and writes them as JSON (--out).
  train:  `scripts/bench.py --task train`: target tokens/s of the real training step on the same real batches;
  decode: beam-5 sentences/s on the first 300 test sentences with a model of the config initialised with
          seed 1 (untrained: every hypothesis runs to the length limit a=1, b=5 in both trees, so this
          times the decoder step and the search, not when they stop)."""
import argparse, json, os, statistics, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def config_in(tree: Path, args) -> str:
    "The config file as `tree` has it, else this checkout's (an earlier revision may predate it: configs/bahdanau.yaml was its base.yaml)."
    return str(tree/args.config if (tree/args.config).exists() else ROOT/args.config)


def bench_train(tree: Path, args) -> float:
    cmd = [sys.executable, str(tree/"scripts/bench.py"), "--task", "train", "--config", config_in(tree, args),
           "--threads", str(args.threads), "--repeats", "1", "--steps", str(args.steps), "--warmup", "3"]
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONWARNINGS="ignore")
    r = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if r.returncode: sys.exit(f"{tree}: bench.py failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["tokens_per_s"]


DECODE = r"""
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[2]))
from seq2seq_nb.train import load_config, collate_src
from seq2seq_nb.search import beam_search, SearchConfig
from seq2seq_nb.vanilla import build_model
from seq2seq_nb.data import Tokenizer, load_split, set_seed
cfg = load_config(sys.argv[1])
tok = Tokenizer.train(load_split(cfg.data, "train"), cfg.data)
set_seed(1); m = build_model(cfg.model, tok.src_vocab_size, tok.tgt_vocab_size).eval()
src = [s[:255] + [3] for s in tok.encode_src(load_split(cfg.data, "test").src[:300])]
order = sorted(range(len(src)), key=lambda i: len(src[i]))
def run():
    t0, n = time.perf_counter(), 0
    for k in range(0, len(order), 64):
        out = beam_search(m, *collate_src([src[i] for i in order[k:k + 64]]), SearchConfig(beam=5, max_len_a=1.0, max_len_b=5))
        n += sum(len(h[0].tokens) for h in out)
    return time.perf_counter() - t0, n
run(); ts = sorted(run() for _ in range(3))
print(json.dumps({"sent_per_s": len(src) / ts[1][0], "out_tokens": ts[1][1]}))
"""


def bench_decode(tree: Path, args) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, "-c", DECODE, config_in(tree, args), str(args.threads)], cwd=tree, env=env,
                       capture_output=True, text=True)
    if r.returncode: sys.exit(f"{tree}: decoding failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["sent_per_s"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rev", required=True, help="the earlier revision (commit, tag, branch)")
    p.add_argument("--task", choices=["train", "decode"], default="train")
    p.add_argument("--config", default="configs/bahdanau.yaml", help="config, relative to each tree (else to this one)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="JSON file for the figures")
    args = p.parse_args()
    unit = "target tokens/s" if args.task == "train" else "sentences/s (beam 5)"
    with tempfile.TemporaryDirectory() as d:
        old = Path(d)/"old"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old), args.rev], cwd=ROOT, check=True)
        try:
            rates = {"old": [], "new": []}
            for i in range(args.rounds):
                for name, tree in (("old", old), ("new", ROOT)) if i % 2 == 0 else (("new", ROOT), ("old", old)):
                    rates[name].append((bench_train if args.task == "train" else bench_decode)(tree, args))
                print(f"round {i + 1}: old {rates['old'][-1]:,.1f}  new {rates['new'][-1]:,.1f} {unit}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT)
    med = {k: statistics.median(v) for k, v in rates.items()}
    res = {"rev": args.rev, "task": args.task, "unit": unit, "config": args.config, "threads": args.threads, "rates": rates, "median": med,
           "ratio_new_over_old": med["new"] / med["old"]}
    print(f"median: old {med['old']:,.1f}, new {med['new']:,.1f} {unit}; new/old = {res['ratio_new_over_old']:.3f}")
    if args.out: Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__": main()
