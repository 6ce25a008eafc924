#!/usr/bin/env python
"""Run (or resume) the experiment grid of nbs/08_experiments.ipynb: one training run per config in configs/experiments/.

Finished rows (a result file in --results-dir) are skipped; an interrupted row resumes from its last.pt.
Ctrl-C / SIGTERM finish the current step, write last.pt and stop; rerun the same command to go on."""
import argparse, sys
from pathlib import Path

from seq2seq_nb.core import CheckpointError, ConfigError
from seq2seq_nb.data import DataError
from seq2seq_nb.experiments import Interrupted, grid_configs, load_results, run_row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="*", help="config files (default: the grid in --configs-dir)")
    p.add_argument("--configs-dir", default="configs/experiments")
    p.add_argument("--rows", help="comma-separated row names to run (default: all)")
    p.add_argument("--epochs", type=int, default=8, help="epochs of every row (default 8) but those whose config sets train.max_steps (the low-resource rows)")
    p.add_argument("--runs-dir", default="runs/experiments", help="checkpoints and logs (not committed)")
    p.add_argument("--results-dir", default="experiments/results", help="result files (committed)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override for every row")
    p.add_argument("--eval-subset", type=int, default=0, help="score only the first N dev/test sentences (smoke tests)")
    p.add_argument("--alphas", type=float, nargs="+", default=(), metavar="A",
                   help="also pick the length-penalty alpha on dev among these and score with it (beam5_tuned)")
    p.add_argument("--beams", type=int, nargs="+", default=(), metavar="K",
                   help="with --alphas: also pick the beam size among these (with α, on dev) and score with both (search_tuned)")
    p.add_argument("--list", action="store_true", help="list the rows and where each stands, then exit")
    a = p.parse_args(argv)
    if a.beams and not a.alphas: print("error: --beams needs --alphas (the search picks a beam size and an α together)", file=sys.stderr); return 2
    if any(k < 1 for k in a.beams): print(f"error: --beams: beam sizes must be >= 1, got {' '.join(map(str, a.beams))}", file=sys.stderr); return 2
    configs = [Path(c) for c in a.configs] if a.configs else grid_configs(a.configs_dir)
    if a.rows:
        want = a.rows.split(",")
        unknown = sorted(set(want) - {c.stem for c in configs})
        if unknown: print(f"error: --rows: no config for {', '.join(unknown)} in {a.configs_dir}", file=sys.stderr); return 2
        configs = [c for c in configs if c.stem in want]
    if a.list:
        done = load_results(a.results_dir)
        for c in configs:
            state = "done" if c.stem in done else "interrupted (resumes)" if (Path(a.runs_dir)/c.stem/"last.pt").exists() else "to run"
            print(f"{c.stem:14} {c}  {state}")
        return 0
    try:
        for c in configs: run_row(c, a.runs_dir, a.results_dir, a.epochs, a.overrides, a.eval_subset, log=lambda m: print(m, flush=True),
                                 alphas=tuple(a.alphas), beams=tuple(a.beams))
    except Interrupted as e: print(e, file=sys.stderr); return 130
    except (ConfigError, DataError, CheckpointError) as e: print(f"error: {e}", file=sys.stderr); return 2
    return 0


if __name__ == "__main__": sys.exit(main())
