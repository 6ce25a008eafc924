"""Beam search: beam 1 == greedy, batched == per-sentence reference == exhaustive search, batch independence."""
import itertools

import math

import pytest
import torch

from seq2seq_nb.data import BOS, EOS, UNK, ConfigError, from_dict
from seq2seq_nb.search import SearchConfig, beam_search, beam_search_single, length_penalty
from seq2seq_nb.train import collate_src, strip_special
from seq2seq_nb.vanilla import Seq2Seq, greedy_decode, max_lengths
from helpers import tiny_model, assert_batched_equals_single


def sources(seed=0, n=6, vocab=23):
    g = torch.Generator().manual_seed(seed)
    lens = [7, 0, 3, 12, 5, 1][:n]
    return [torch.randint(4, vocab, (k,), generator=g).tolist() + [EOS] for k in lens]


@pytest.mark.parametrize("arch,cell", [("vanilla", "gru"), ("attention", "gru"), ("attention", "lstm")])
@pytest.mark.parametrize("seed", [0, 1])
def test_beam_one_is_greedy(arch, cell, seed):
    m = tiny_model(arch, cell, seed=seed)
    src = collate_src(sources(seed))
    greedy = greedy_decode(m, *src)
    for i, hyps in enumerate(beam_search(m, *src, SearchConfig(beam=1, alpha=0.6))):
        assert hyps[0].tokens == strip_special(greedy.tokens[i])
        assert abs(hyps[0].logprob - float(greedy.scores[i])) < 1e-4


@pytest.mark.parametrize("cfg", [SearchConfig(beam=4, alpha=0.6, n_best=4), SearchConfig(beam=3, alpha=1.0, coverage=0.4, n_best=2),
                                 SearchConfig(beam=5, alpha=0.0, max_len_a=0.5, max_len_b=3, n_best=5)])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_batched_equals_single_sentence(cfg, cell):
    assert_batched_equals_single(tiny_model("attention", cell, tgt_vocab=13), sources(2), cfg)


def _exhaustive(model, src_ids, max_out, alpha):
    outs = []
    for n in range(max_out + 1):
        for body in itertools.product([UNK, 4], repeat=n):
            if n < max_out: outs.append(list(body) + [EOS])
            elif n: outs.append(list(body))
    src = collate_src([src_ids] * len(outs))
    with torch.no_grad(): logits, _ = model(*src, collate_src([[BOS] + o[:-1] for o in outs])[0])
    logp = torch.log_softmax(logits, -1)
    scored = [(sum(float(logp[i, t, o[t]]) for t in range(len(o))) / length_penalty(len(o), alpha), [x for x in o if x != EOS])
              for i, o in enumerate(outs)]
    return sorted(scored, key=lambda x: -x[0])


@pytest.mark.parametrize("seed", [0, 3, 7])
@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_beam_as_wide_as_vocabulary_matches_exhaustive_search(seed, alpha):
    m = tiny_model("attention", tgt_vocab=5, seed=seed)
    for src_ids in ([5, 6, 7, EOS], [9, EOS]):
        best = _exhaustive(m, src_ids, 2, alpha)
        h = beam_search(m, *collate_src([src_ids]), SearchConfig(beam=5, alpha=alpha, max_len_a=0, max_len_b=2))[0][0]
        assert h.tokens == best[0][1] and abs(h.score - best[0][0]) < 1e-4
        full = _exhaustive(m, src_ids, 3, alpha)          # 15 outputs; a beam of 16 never prunes
        hyps = beam_search(m, *collate_src([src_ids]), SearchConfig(beam=16, alpha=alpha, n_best=16, max_len_a=0, max_len_b=3))[0]
        assert [x.tokens for x in hyps] == [o for _, o in full]


def test_translation_does_not_depend_on_the_batch():
    m = tiny_model("attention", tgt_vocab=40)
    srcs = sources(4)
    cfg = SearchConfig(beam=4)
    together = [h[0] for h in beam_search(m, *collate_src(srcs), cfg)]
    for i, s in enumerate(srcs):
        alone = beam_search(m, *collate_src([s]), cfg)[0][0]
        assert alone.tokens == together[i].tokens and abs(alone.score - together[i].score) < 1e-4
    reordered = beam_search(m, *collate_src(srcs[::-1] + srcs), cfg)
    assert [h[0].tokens for h in reordered[len(srcs):]] == [h.tokens for h in together]


def test_deterministic_and_within_length_limits():
    m = tiny_model("attention", tgt_vocab=40)
    srcs = sources(5)
    src = collate_src(srcs)
    cfg = SearchConfig(beam=3, n_best=3, max_len_a=1.0, max_len_b=2, alignments=True)
    a, b = beam_search(m, *src, cfg), beam_search(m, *src, cfg)
    no_alignments = beam_search(m, *src, SearchConfig(beam=3, n_best=3, max_len_a=1.0, max_len_b=2))
    assert all(h.alphas is None for x in no_alignments for h in x)                 # no history unless asked for
    assert [[h.tokens for h in x] for x in no_alignments] == [[h.tokens for h in x] for x in a]
    assert [[h.tokens for h in x] for x in a] == [[h.tokens for h in x] for x in b]
    limits = max_lengths(src[2], 1.0, 2)
    for hyps, lim in zip(a, limits.tolist()):
        assert hyps, "every sentence, the empty one included, gets a hypothesis"
        for h in hyps:
            assert len(h.tokens) + h.ended <= lim
            assert h.alphas.shape == (len(h.tokens) + h.ended, src[0].shape[1])
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def test_search_config_errors():
    with pytest.raises(ConfigError, match="n_best: must be between 1 and beam"): from_dict(SearchConfig, {"beam": 2, "n_best": 3})
    with pytest.raises(ConfigError, match="beam: must be >= 1"): from_dict(SearchConfig, {"beam": 0})
    with pytest.raises(ConfigError, match="^coverage: must be >= 0"): from_dict(SearchConfig, {"coverage": -1})
    with pytest.raises(ConfigError, match="^alpha: must be >= 0"): from_dict(SearchConfig, {"alpha": -1})


def test_decoding_sees_in_place_weight_updates():
    "Weights changed through `.data` (weight averaging, EMA) are used by the next decoding, as by a fresh copy."
    import copy
    m = tiny_model("attention", tgt_vocab=40)
    src = collate_src(sources(4))
    beam_search(m, *src, SearchConfig(beam=3))                           # decode once (a cache would fill here)
    with torch.no_grad():
        for p in m.parameters(): p.data.mul_(-1.5)                        # no version bump
    fresh = copy.deepcopy(m)
    got, want = beam_search(m, *src, SearchConfig(beam=3)), beam_search(fresh, *src, SearchConfig(beam=3))
    assert [h[0].tokens for h in got] == [h[0].tokens for h in want]
    assert [h[0].score for h in got] == [h[0].score for h in want]


class TableModel(Seq2Seq):
    """A 'model' whose next-token probabilities are a fixed table of the previous token (vocabulary
    <pad> <unk> <bos> <eos> 4 5). After <bos>: 4 (0.85), <eos> (0.14), 5 (0.01); after 4 or 5: the same or
    the other (0.5, 0.49) and rarely <eos> (0.01). The best output is the empty one, at 0.14."""
    def __init__(self):
        super().__init__()
        t = torch.full((6, 6), 1e-9)
        t[BOS, 4], t[BOS, EOS], t[BOS, 5] = 0.85, 0.14, 0.01
        t[4, 4], t[4, 5], t[4, EOS] = 0.5, 0.49, 0.01
        t[5, 5], t[5, 4], t[5, EOS] = 0.5, 0.49, 0.01
        self.table = torch.nn.Parameter((t / t.sum(1, keepdim=True)).log(), requires_grad=False)
    def encode(self, src, src_mask, src_lengths): return src_mask.float()
    def init_state(self, memory): return torch.zeros(memory.shape[0])
    def step(self, y_prev, state, memory): return self.table[y_prev], state, None


def test_a_finished_hypothesis_is_never_pushed_out():
    """Keeping ended hypotheses inside the beam lets open ones push them out (K=2: '4 4' at 0.425 and '4 5' at
    0.4165 outrank '<eos>' at 0.14 after step 2) and loses the best output for good; a finished list keeps it."""
    m = TableModel().eval()
    src = collate_src([[7, 8, EOS]])
    cfg = SearchConfig(beam=2, alpha=0.0, max_len_a=0, max_len_b=6)
    best = beam_search(m, *src, cfg)[0][0]
    assert best.tokens == [] and best.ended and abs(best.logprob - math.log(0.14)) < 1e-4
    assert beam_search_single(m, [7, 8, EOS], cfg)[0].tokens == []


def test_search_stops_when_nothing_open_can_win():
    """Open beams lose a factor of about 2 per step and rarely end; once the best of them (0.85·0.5^3 after 4
    steps) falls below the finished '<eos>' (0.14), no open one can win and the search stops at step 4,
    not at the length limit of 50."""
    m, calls = TableModel().eval(), []
    step = m.step
    m.step = lambda *a: (calls.append(1), step(*a))[1]
    hyps = beam_search(m, *collate_src([[7, EOS]]), SearchConfig(beam=2, alpha=0.0, max_len_a=0, max_len_b=50))
    assert len(calls) == 4 and hyps[0][0].tokens == []


def test_decoding_stacks_the_step_weights_once_per_memory_not_per_step():
    "The stacked step weights are built at encode time and again only when the batch is reordered (a sentence ends)."
    m = tiny_model("attention", tgt_vocab=40)
    calls, build = [], m._step_weights
    m._step_weights = lambda: (calls.append(1), build())[1]
    steps, step = [], m.step
    m.step = lambda *a: (steps.append(1), step(*a))[1]
    src = collate_src(sources(5))
    beam_search(m, *src, SearchConfig(beam=3, max_len_a=1.0, max_len_b=4))
    assert len(steps) >= 4 and len(calls) <= 1 + 5                         # once, plus at most once per finished sentence
    calls.clear(); greedy_decode(m, *src)
    assert len(calls) == 1
