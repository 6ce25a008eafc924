"""The model contract: declared state reordering for any state layout, the open registry, auxiliary losses."""
import ast, json
from pathlib import Path

import pytest
import torch

from seq2seq_nb.attention import AttentionSeq2Seq
from seq2seq_nb.core import ConfigError
from seq2seq_nb.search import SearchConfig, beam_search, beam_search_single
from seq2seq_nb.train import Trainer, collate_src, load_config, strip_special
from seq2seq_nb.vanilla import MODELS, ModelConfig, RNNState, Seq2Seq, build_model, greedy_decode, register_model, select_rows
from conftest import ROOT, quick_overrides
from helpers import assert_batched_equals_single, tiny_model


class PytreeState(Seq2Seq):
    """The tiny attention model behind a state of every shape the contract allows: an `nn.GRU`-style (L, B, H)
    hidden state (batch axis 1), a growing cache of past tokens (B, t, 1) that changes the logits, a 1-tuple,
    a list, a dict and a NamedTuple with a `None`, nested; its memory is a dict holding a NamedTuple and a list."""
    def __init__(self, inner): super().__init__(); self.inner = inner

    def encode(self, src, src_mask, src_lengths):
        m = self.inner.encode(src, src_mask, src_lengths)
        return {"mem": m, "extra": [m.src_mask]}

    def init_state(self, memory):
        h = self.inner.init_state(memory["mem"]).h
        return {"rnn": (h.unsqueeze(0),), "cache": [h.new_zeros(h.shape[0], 0, 1)], "nt": RNNState(h), "n": {"t": [h[:, :1]]}}

    def step(self, y_prev, state, memory):
        h = state["rnn"][0][0]
        logits, new, a = self.inner.step(y_prev, RNNState(h), memory["mem"])
        cache = torch.cat([state["cache"][0], y_prev.float()[:, None, None]], 1)          # grows every step
        logits = logits + 0.05 * torch.sin(cache.sum((1, 2)))[:, None] * torch.arange(logits.shape[1])
        return logits, {"rnn": (new.h.unsqueeze(0),), "cache": [cache], "nt": RNNState(new.h), "n": {"t": [new.h[:, :1]]}}, a

    def reorder_state(self, state, rows):
        "Batch axis 1 for the (L, B, H) part, 0 for everything else."
        return {"rnn": select_rows(state["rnn"], rows, dim=1), **select_rows({k: v for k, v in state.items() if k != "rnn"}, rows)}


def _sources(n=6, V=23, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, V, (k,), generator=g).tolist() + [3] for k in (7, 0, 3, 12, 5, 1)[:n]]


@pytest.mark.parametrize("cfg", [SearchConfig(beam=4, alpha=0.6, n_best=3), SearchConfig(beam=3, alpha=1.0, coverage=0.4)])
def test_beam_search_reorders_any_declared_state(cfg):
    "Batched beam search (which reorders the state every step) equals the per-hypothesis search (which never does)."
    assert_batched_equals_single(PytreeState(tiny_model("attention")).eval(), _sources(), cfg)


def test_a_wrong_reorder_is_caught():
    "The test above would fail on a model that reorders its (L, B, H) state along the wrong axis."
    class Wrong(PytreeState):
        def reorder_state(self, state, rows): return super().reorder_state(state, rows.flip(0))  # scrambles the rows
    m = Wrong(tiny_model("attention")).eval()
    srcs, cfg = _sources(), SearchConfig(beam=4, alpha=0.6)
    batched = beam_search(m, *collate_src(srcs), cfg)
    assert any(h[0].tokens != beam_search_single(m, s, cfg)[0].tokens for s, h in zip(srcs, batched))
    class Axis0(PytreeState):                          # the default (batch axis 0 everywhere) is loud on (L, B, H)
        reorder_state = Seq2Seq.reorder_state
    with pytest.raises(IndexError): beam_search(Axis0(m.inner).eval(), *collate_src(srcs), cfg)


def test_greedy_through_the_contract():
    m = PytreeState(tiny_model("attention")).eval()
    src, mask, lengths = collate_src(_sources())
    g = greedy_decode(m, src, mask, lengths)
    for i, hyps in enumerate(beam_search(m, src, mask, lengths, SearchConfig(beam=1))):
        assert hyps[0].tokens == strip_special(g.tokens[i])


def test_select_rows_refuses_what_it_cannot_reorder():
    with pytest.raises(TypeError, match="cannot reorder a list|cannot reorder a int"):
        select_rows({"h": torch.zeros(2, 3), "lengths": [1, 2]}, torch.tensor([1, 0]))
    one = select_rows((torch.arange(3),), torch.tensor([2]))
    assert isinstance(one, tuple) and len(one) == 1 and one[0].tolist() == [2]     # a 1-tuple stays one


def test_registry_is_open_and_checked():
    @register_model("test_wide_attention", keys=MODELS["attention"].keys | {"readout_dim"})
    class Wide(AttentionSeq2Seq): pass
    try:
        m = build_model(ModelConfig(arch="test_wide_attention", emb_dim=8, enc_hidden=6, dec_hidden=10, attn_dim=7), 20, 20)
        assert isinstance(m, Wide)
        with pytest.raises(ConfigError, match="model.attn_dim: does not apply to arch 'vanilla'"):
            load_config(ROOT/"configs/tiny.yaml", ["model.arch=vanilla"])          # tiny.yaml sets attn_dim
        with pytest.raises(ConfigError, match="model.arch: 'nope' is not a registered architecture; registered: .*attention"):
            load_config(ROOT/"configs/tiny.yaml", ["model.arch=nope"])
    finally: MODELS.pop("test_wide_attention")


def test_aux_losses_are_added_and_logged(tmp_path, multi30k_cfg):
    "A model's auxiliary loss reaches the gradient and the training log."
    @register_model("test_aux", keys=MODELS["attention"].keys)
    class Aux(AttentionSeq2Seq):
        def aux_losses(self, batch, alphas):       # worth 3 per target token; its gradient pushes the output bias
            b = self.generator.b_o.sum()
            return {"bias": 3.0 * batch.n_tokens + batch.n_tokens * (b - b.detach())}
    try:
        runs = {}
        for arch in ("attention", "test_aux"):
            cfg = load_config(ROOT/"configs/tiny.yaml", quick_overrides(**{"model.arch": arch, "train.max_steps": 2, "train.log_every": 1}))
            cfg.data.mirror = multi30k_cfg.mirror
            tr = Trainer(cfg, tmp_path/arch, quiet=True); tr.fit(); runs[arch] = tr
        recs = [json.loads(l) for l in (tmp_path/"test_aux"/"metrics.jsonl").read_text().splitlines() if '"train"' in l]
        assert recs and all(abs(r["aux_bias"] - 3.0) < 1e-6 for r in recs)
        assert not torch.equal(runs["attention"].model.generator.b_o, runs["test_aux"].model.generator.b_o)
    finally: MODELS.pop("test_aux")


def test_modules_import_only_forward():
    "core -> data -> models -> train -> search: no module imports one that comes after it."
    order = ["core", "data", "vanilla", "attention", "rnn", "transformer", "train", "search", "experiments"]
    pkg = ROOT/"seq2seq_nb"
    for i, name in enumerate(order):
        path = pkg/f"{name}.py"
        if not path.exists(): continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                mods = [node.module or ""] if node.level else [m[len("seq2seq_nb."):] for m in [node.module or ""] if m.startswith("seq2seq_nb.")]
            elif isinstance(node, ast.Import): mods = [a.name[len("seq2seq_nb."):] for a in node.names if a.name.startswith("seq2seq_nb.")]
            else: continue
            for mod in mods:
                target = mod.split(".")[0]
                if target in order: assert order.index(target) <= i, f"{name}.py imports {target}, which comes after it"
