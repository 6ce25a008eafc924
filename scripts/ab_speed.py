#!/usr/bin/env python
"""Training speed of this checkout against an earlier revision, side by side in one run.

  python scripts/ab_speed.py --rev d46ccd6 [--config configs/base.yaml] [--rounds 5] [--threads 2]

Checks the revision out into a temporary git worktree, then alternates `scripts/bench.py --task train`
(target tokens/s of the real training step on the same real batches) between the two trees, round
after round, so that drift in the machine's speed hits both equally; prints the per-round figures, the
medians and their ratio, and writes them as JSON (--out)."""
import argparse, json, os, statistics, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_train(tree: Path, args) -> float:
    cmd = [sys.executable, str(tree/"scripts/bench.py"), "--task", "train", "--config", str(tree/args.config),
           "--threads", str(args.threads), "--repeats", "1", "--steps", str(args.steps), "--warmup", "3"]
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONWARNINGS="ignore")
    r = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if r.returncode: sys.exit(f"{tree}: bench.py failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["tokens_per_s"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rev", required=True, help="the earlier revision (commit, tag, branch)")
    p.add_argument("--config", default="configs/base.yaml", help="config, relative to each tree")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="JSON file for the figures")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        old = Path(d)/"old"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old), args.rev], cwd=ROOT, check=True)
        try:
            rates = {"old": [], "new": []}
            for i in range(args.rounds):
                for name, tree in (("old", old), ("new", ROOT)) if i % 2 == 0 else (("new", ROOT), ("old", old)):
                    rates[name].append(bench_train(tree, args))
                print(f"round {i + 1}: old {rates['old'][-1]:,.0f}  new {rates['new'][-1]:,.0f} target tokens/s", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT)
    med = {k: statistics.median(v) for k, v in rates.items()}
    res = {"rev": args.rev, "config": args.config, "threads": args.threads, "rates": rates, "median": med,
           "ratio_new_over_old": med["new"] / med["old"]}
    print(f"median: old {med['old']:,.0f}, new {med['new']:,.0f} target tokens/s; new/old = {res['ratio_new_over_old']:.3f}")
    if args.out: Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__": main()
