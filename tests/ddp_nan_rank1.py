"""Test helper, run under torchrun: `seq2seq_nb.train.main` where rank 1's training loss turns infinite at its 3rd batch.

Nothing in the library reads a test switch: this wrapper replaces the loss on one rank only, the way a bad batch
or an overflow would hit a single process of a real run."""
import os, sys

import seq2seq_nb.train as train

if int(os.environ.get("RANK", 0)) == 1:
    calls, loss = [0], train.seq2seq_loss
    def bad_loss(*a, **k):
        calls[0] += 1
        out = loss(*a, **k)
        return out * float("inf") if calls[0] == 3 else out
    train.seq2seq_loss = bad_loss

sys.exit(train.main())
