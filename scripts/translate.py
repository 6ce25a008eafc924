#!/usr/bin/env python
"""Translate text with a trained checkpoint:
`python scripts/translate.py --ckpt runs/base/best.pt --src FILE|- --out FILE|- --beam 5` (see --help).

Same as `python -m seq2seq_nb.search` and the `seq2seq-translate` console script.
"""
import sys

from seq2seq_nb.search import main

if __name__ == "__main__":
    sys.exit(main())
