#!/usr/bin/env python
"""Train a model from a YAML config: `python scripts/train.py --config configs/base.yaml` (see --help).

Same as `python -m seq2seq_nb.train` and the `seq2seq-train` console script.
"""
import sys

from seq2seq_nb.train import main

if __name__ == "__main__":
    sys.exit(main())
