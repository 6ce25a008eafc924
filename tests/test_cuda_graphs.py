"""`greedy_decode_graphed` (04): greedy decoding with the decoder step replayed as a CUDA graph gives `greedy_decode`'s
tokens and scores. The GPU tests need a CUDA device (CI has none: they skip there; run on a lent GPU machine)."""
import pytest
import torch

from helpers import tiny_model
from seq2seq_nb.core import autocast
from seq2seq_nb.data import EOS, PAD
from seq2seq_nb.search import greedy_decode_graphed, greedy_graph_search_fn
from seq2seq_nb.train import collate_src, decode_corpus
from seq2seq_nb.vanilla import ModelConfig, Seq2Seq, TransformerConfig, build_model, greedy_decode

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

RNN_MODELS = {                                   # every recurrent model of the series: 01, 02, and 06's options
    "vanilla gru": dict(arch="vanilla"), "vanilla lstm": dict(arch="vanilla", cell="lstm"),
    "attention gru": dict(arch="attention"), "attention lstm": dict(arch="attention", cell="lstm"),
    "deep residual": dict(arch="attention", enc_layers=2, dec_layers=2),
    "input feeding, general": dict(arch="attention", input_feeding=True, attn_score="general"),
    "coverage lstm": dict(arch="attention", cell="lstm", coverage_attn=True, dec_layers=2),
}


def sources(n=24, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, 23, (int(k),), generator=g).tolist() + [EOS] for k in torch.randint(0, 14, (n,), generator=g)]


class EndsAt(Seq2Seq):
    """A model of the series whose sentences end at different steps: sentence b emits `<eos>` at step `ends[b]`, from
    its source length (odd: step len % 5 + 2; even: never, so the length limit ends it). Its state carries a counter."""
    def __init__(self, inner):
        super().__init__(); self.inner = inner
    def encode(self, src, src_mask, src_lengths):
        ends = torch.where(src_lengths % 2 == 1, src_lengths % 5 + 2, 10 ** 6).to(src.device)
        return self.inner.encode(src, src_mask, src_lengths), ends
    def init_state(self, memory):
        return self.inner.init_state(memory[0]), torch.zeros_like(memory[1])
    def step(self, y_prev, state, memory):
        logits, s, a = self.inner.step(y_prev, state[0], memory[0])
        n = state[1] + 1
        logits = logits.clone()
        logits[:, EOS] = torch.where(n >= memory[1], 1e4, -1e4).to(logits.dtype)
        return logits, (s, n), a


@pytest.fixture
def replays(monkeypatch):
    "How many times the code under test replayed a CUDA graph (0: it took the plain loop)."
    n = [0]
    class Counting(torch.cuda.CUDAGraph):
        def replay(self): n[0] += 1; return super().replay()
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Counting)
    return n


def plain_loop_expected(name, precision) -> bool:
    """01's fixed-context model under bf16 autocast on CUDA: autocast runs cuDNN's GRU/LSTM in fp16 whatever its dtype
    (PyTorch's choice), so s_0 is bf16 and s_1 fp16: the state changes dtype, and the plain loop decodes it."""
    return name.startswith("vanilla") and precision == "bf16"


def lengths(tokens): return sorted(int((r != PAD).sum()) for r in tokens)


def test_off_cuda_it_is_greedy_decode():
    "On the CPU: `greedy_decode` itself (its attention weights included), and the registered search decodes alike."
    m, srcs = tiny_model(), sources()
    a, b = greedy_decode_graphed(m, *collate_src(srcs)), greedy_decode(m, *collate_src(srcs))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.scores, b.scores) and a.alphas is not None
    assert decode_corpus(m, srcs, greedy_graph_search_fn(), batch_size=7) == decode_corpus(m, srcs, batch_size=7)
    with pytest.raises(ValueError, match="check_every must be >= 1"): greedy_decode_graphed(m, *collate_src(srcs), check_every=0)


@cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", list(RNN_MODELS))
@pytest.mark.parametrize("ends", [False, True], ids=["length-limit", "eos"])
def test_graph_replay_equals_greedy_decode(name, precision, ends, replays):
    m = tiny_model(**RNN_MODELS[name], tgt_vocab=40).cuda()
    if ends: m = EndsAt(m).eval()
    src = collate_src(sources(), "cuda")
    with autocast(torch.device("cuda"), precision):
        ref = greedy_decode(m, *src)
        for every in (1, 3, 8):                  # a batch ends between two checks, on one, after the last full round
            before = replays[0]
            got = greedy_decode_graphed(m, *src, check_every=every)
            graphed = replays[0] > before
            assert graphed != plain_loop_expected(name, precision), (name, precision)
            if not name.startswith("vanilla"):   # the plain loop returns its attention weights (01's model has none)
                assert graphed == (got.alphas is None)
            assert got.tokens.shape == ref.tokens.shape and torch.equal(got.tokens, ref.tokens), (name, every)
            torch.testing.assert_close(got.scores, ref.scores, atol=1e-4, rtol=1e-5)
    if ends:                                     # both ways of ending, at different steps
        assert (ref.tokens == EOS).any(1).sum() >= 3 and not (ref.tokens == EOS).any(1).all()
        assert len(set(lengths(ref.tokens))) >= 4


@cuda
def test_the_transformer_takes_the_plain_loop(replays):
    "Its state (the key/value cache) grows every step: no graph, `greedy_decode`'s result with its attention weights."
    torch.manual_seed(0)
    cfg = ModelConfig(arch="transformer", transformer=TransformerConfig(d_model=16, heads=4, ff_dim=24, enc_layers=1,
                                                                         dec_layers=1, dropout=0.))
    m = build_model(cfg, 40, 40).eval().cuda()
    src = collate_src(sources(), "cuda")
    got, ref = greedy_decode_graphed(m, *src), greedy_decode(m, *src)
    assert replays[0] == 0 and got.alphas is not None and torch.equal(got.tokens, ref.tokens)


@cuda
def test_decode_corpus_with_the_graph_search(replays):
    "Batches of several shapes (a graph each), outputs in input order, as the plain greedy search."
    m = tiny_model(tgt_vocab=40).cuda()
    srcs = sources(50, seed=3)
    assert decode_corpus(m, srcs, greedy_graph_search_fn(), batch_size=16) == decode_corpus(m, srcs, batch_size=16)
    assert replays[0] >= 4 * 8                   # 4 batches, each at least one round of 8 steps


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda)])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", list(RNN_MODELS))
def test_every_recurrent_state_keeps_its_shapes_and_dtypes(name, precision, device):
    """What a replayed graph needs: s_0, s_1 and s_2 alike in shape and dtype. On a GPU under bf16 autocast, coverage
    C_0 was bf16 and C_1 = C_0 + α fp32 (CUDA autocast computes softmax in fp32; the CPU's does not), which sent
    coverage models to the plain loop; C is now kept in fp32 from C_0 on, on both devices."""
    from torch.utils._pytree import tree_leaves
    m = tiny_model(**RNN_MODELS[name], tgt_vocab=40).to(device)
    src, mask, lengths = collate_src(sources(), device)
    lengths = lengths.to(device)
    y = torch.full((src.shape[0],), 1, dtype=torch.long, device=device)
    sig = lambda s: [(x.shape, x.dtype) for x in tree_leaves(s) if isinstance(x, torch.Tensor)]
    with torch.inference_mode(), autocast(torch.device(device), precision):
        memory = m.encode(src, mask, lengths)
        states = [m.init_state(memory)]
        for _ in range(2): states.append(m.step(y, states[-1], memory)[1])
    if device == "cuda" and plain_loop_expected(name, precision):
        assert sig(states[0]) != sig(states[1]) == sig(states[2]); return
    assert sig(states[0]) == sig(states[1]) == sig(states[2])
    if RNN_MODELS[name].get("coverage_attn"): assert states[0].coverage.dtype == torch.float32


@cuda
def test_precision_auto_on_cuda_is_measured():
    "The CUDA probe times both precisions (TF32 left as it was) and picks bf16 only on a 20% win."
    from seq2seq_nb.core import _BF16_PROBE, bf16_is_faster
    tf32 = torch.backends.cuda.matmul.allow_tf32
    picks = bf16_is_faster(torch.device("cuda"))
    fp32, bf16 = _BF16_PROBE["cuda"]
    assert fp32 > 0 and bf16 > 0 and picks == (bf16 > 1.2 * fp32) and "CUDA" in bf16_is_faster.last
    assert torch.backends.cuda.matmul.allow_tf32 == tf32
