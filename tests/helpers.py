"""Tiny seeded models and batches shared by the tests."""
import torch

from seq2seq_nb.data import BOS, EOS, PAD, collate, set_seed
from seq2seq_nb.vanilla import ModelConfig, build_model

ARCHS = [("vanilla", "gru"), ("vanilla", "lstm"), ("attention", "gru"), ("attention", "lstm")]


def tiny_model(arch="attention", cell="gru", seed=0, src_vocab=23, tgt_vocab=29, **kw):
    set_seed(seed)
    if arch == "attention": kw.setdefault("attn_dim", 7)      # the only architecture here with an attention MLP
    cfg = ModelConfig(arch=arch, cell=cell, emb_dim=8, enc_hidden=6, dec_hidden=10, dropout_emb=0., dropout_rnn=0., **kw)
    return build_model(cfg, src_vocab, tgt_vocab).eval()


def random_batch(seed=0, B=5, max_src=9, max_tgt=8, src_vocab=23, tgt_vocab=29):
    "A padded batch of random pairs with different lengths (the first is the longest on both sides)."
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(B):
        s = max_src - 1 if i == 0 else int(torch.randint(0, max_src - 1, (1,), generator=g))
        t = max_tgt if i == 0 else int(torch.randint(1, max_tgt + 1, (1,), generator=g))
        src = torch.randint(4, src_vocab, (s,), generator=g).tolist() + [EOS]
        tgt = torch.randint(4, tgt_vocab, (t,), generator=g).tolist()
        items.append((i, src, tgt))
    return collate(items)


def assert_batched_equals_single(model, srcs, cfg):
    "Batched beam search gives every sentence the n-best list of the one-sentence reference: tokens, scores, ended."
    from seq2seq_nb.search import beam_search, beam_search_single
    from seq2seq_nb.train import collate_src
    batched = beam_search(model, *collate_src(srcs), cfg)
    for hyps, s in zip(batched, srcs):
        single = beam_search_single(model, s, cfg)
        assert [h.tokens for h in hyps] == [h.tokens for h in single]
        assert torch.allclose(torch.tensor([h.score for h in hyps]), torch.tensor([h.score for h in single]), atol=1e-4)
        assert [h.ended for h in hyps] == [h.ended for h in single]
