"""The general RNN model of 06 (deeper RNNs, Luong's order with input feeding, three scores, coverage): the model contract
for every option with a GRU and an LSTM, the coverage loss, the registration, overfitting real pairs, and the command line."""
import json

import pytest
import torch

from seq2seq_nb.attention import AttentionSeq2Seq
from seq2seq_nb.core import ConfigError, from_dict, load_checkpoint, save_checkpoint, to_dict
from seq2seq_nb.data import BOS, EOS, PAD, TokenBatchSampler, collate, encode_corpus, set_seed
from seq2seq_nb.rnn import RNNDecoderState, RNNSeq2Seq, coverage_loss
from seq2seq_nb.search import SearchConfig, beam_search, beam_search_single
from seq2seq_nb.train import collate_src, strip_special
from seq2seq_nb.vanilla import ModelConfig, build_model, greedy_decode, seq2seq_loss
from conftest import run_cli
from helpers import random_batch, assert_batched_equals_single

CELLS = ["gru", "lstm"]
OPTIONS = {"deep": dict(enc_layers=2, dec_layers=3),
           "luong": dict(input_feeding=True),
           "general": dict(attn_score="general"),
           "dot": dict(attn_score="dot"),
           "coverage": dict(coverage_attn=True, coverage_loss=0.5),
           "all": dict(enc_layers=2, dec_layers=2, input_feeding=True, attn_score="dot", coverage_attn=True, coverage_loss=1.0,
                       readout_dim=5, tie_embeddings=True)}
every_option = pytest.mark.parametrize("opts", OPTIONS.values(), ids=OPTIONS.keys())
every_cell = pytest.mark.parametrize("cell", CELLS)


def rnn_model(cell="gru", seed=0, src_vocab=23, tgt_vocab=29, **opts):
    "A tiny model of the general RNN class (dec_hidden = 2·enc_hidden, so `dot` applies)."
    set_seed(seed)
    cfg = ModelConfig(arch="attention", cell=cell, emb_dim=8, enc_hidden=6, dec_hidden=12, attn_dim=7, dropout_emb=0., dropout_rnn=0., **opts)
    m = build_model(cfg, src_vocab, tgt_vocab).eval()
    assert isinstance(m, RNNSeq2Seq)
    return m


def sources(seed=0, vocab=23):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, vocab, (k,), generator=g).tolist() + [EOS] for k in (7, 0, 3, 11, 5)]


@every_cell
@every_option
def test_step_equals_parallel(cell, opts):
    m = rnn_model(cell, **opts)
    b = random_batch(seed=4, B=7)
    with torch.no_grad():
        parallel, pa = m.forward_batch(b)
        stepwise, sa = m.forward_stepwise(b.src, b.src_mask, b.src_lengths, b.tgt_in)
        features, fa = m.forward_batch(b, features=True)
    assert parallel.shape == stepwise.shape == (7, b.tgt_in.shape[1], 29) and pa.shape == (7, b.tgt_in.shape[1], b.src.shape[1])
    assert torch.allclose(parallel, stepwise, atol=1e-5) and torch.allclose(pa, sa, atol=1e-6)
    assert torch.allclose(torch.nn.functional.linear(features, *m.generator.output_layer()), parallel, atol=1e-5)   # what the fused loss of 03 computes
    assert torch.equal(fa, pa)
    assert torch.allclose(pa.sum(-1), torch.ones_like(pa[..., 0])) and pa[~b.src_mask[:, None, :].expand_as(pa)].abs().sum() == 0


@every_cell
def test_gradients_of_forward_and_stepwise_match(cell):
    b = random_batch(seed=5)
    grads = []
    for how in ("forward", "stepwise"):
        m = rnn_model(cell, **OPTIONS["all"]).train()
        out, alphas = m.forward_batch(b) if how == "forward" else m.forward_stepwise(b.src, b.src_mask, b.src_lengths, b.tgt_in)
        (out[b.tgt_mask].logsumexp(-1).sum() + m.aux_losses(b, alphas)["coverage"]).backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == len(list(m.parameters()))   # every parameter is used
    for n in grads[0]: assert torch.allclose(grads[0][n], grads[1][n], atol=1e-5), n


@every_cell
@every_option
def test_sentence_alone_equals_inside_a_padded_batch(cell, opts):
    m = rnn_model(cell, **opts)
    b = random_batch(seed=7, B=6)
    with torch.no_grad():
        logits, alphas = m.forward_batch(b)
        for i in range(len(b)):
            s, t = int(b.src_mask[i].sum()), int(b.tgt_mask[i].sum())
            one = collate([(0, b.src[i, :s].tolist(), b.tgt_out[i, :t - 1].tolist())])
            l1, a1 = m.forward_batch(one)
            assert torch.allclose(l1[0], logits[i, :t], atol=1e-5), i
            assert torch.allclose(a1[0], alphas[i, :t, :s], atol=1e-6) and alphas[i, :t, s:].abs().sum() == 0


@every_cell
@pytest.mark.parametrize("opts", [OPTIONS["deep"], OPTIONS["luong"], OPTIONS["all"]], ids=["deep", "luong", "all"])
def test_checkpoint_round_trip(cell, opts, tmp_path):
    m = rnn_model(cell, seed=1, **opts)
    save_checkpoint(tmp_path/"m.pt", {"model": m.state_dict(), "config": to_dict(m.cfg)})
    ck = load_checkpoint(tmp_path/"m.pt")
    m2 = build_model(from_dict(ModelConfig, ck["config"]), 23, 29).eval()                  # rebuilt from the stored config
    b = random_batch(seed=6)
    with torch.no_grad(): assert not torch.allclose(m.forward_batch(b)[0], m2.forward_batch(b)[0])
    m2.load_state_dict(ck["model"])
    with torch.no_grad():
        (l1, a1), (l2, a2) = m.forward_batch(b), m2.forward_batch(b)
    assert type(m2) is RNNSeq2Seq and torch.equal(l1, l2) and torch.equal(a1, a2)
    d1, d2 = (greedy_decode(x, b.src, b.src_mask, b.src_lengths) for x in (m, m2))
    assert torch.equal(d1.tokens, d2.tokens) and torch.equal(d1.scores, d2.scores)


@every_cell
@every_option
def test_beam_one_is_greedy(cell, opts):
    m = rnn_model(cell, seed=2, **opts)
    src = collate_src(sources(1))
    greedy = greedy_decode(m, *src)
    for i, hyps in enumerate(beam_search(m, *src, SearchConfig(beam=1, alpha=0.6))):
        assert hyps[0].tokens == strip_special(greedy.tokens[i])
        assert abs(hyps[0].logprob - float(greedy.scores[i])) < 1e-4


@every_cell
@pytest.mark.parametrize("opts", [OPTIONS["deep"], OPTIONS["all"], dict(dec_layers=2, attn_score="general", coverage_attn=True)],
                         ids=["deep", "all", "bahdanau-order-coverage"])
@pytest.mark.parametrize("cfg", [SearchConfig(beam=4, alpha=0.6, n_best=3), SearchConfig(beam=3, alpha=1.0, coverage=0.4, n_best=2)],
                         ids=["plain", "coverage-penalty"])
def test_batched_beam_equals_one_sentence_beam(cell, opts, cfg):
    assert_batched_equals_single(rnn_model(cell, tgt_vocab=13, **opts), sources(2), cfg)


def test_state_is_batch_first_and_reorders_by_default():
    m = rnn_model("lstm", **OPTIONS["all"])
    src = collate_src(sources(3))
    mem = m.encode(*src)
    state = m.init_state(mem)
    assert isinstance(state, RNNDecoderState) and len(state.layers) == 2 and state.feed.shape == (5, 12)
    assert state.coverage.shape == (5, src[0].shape[1]) and state.layers[1].c.shape == (5, 12)
    y = torch.tensor([BOS] * 5)
    with torch.no_grad():
        _, state, _ = m.step(y, state, mem)                                  # a state with non-zero feed and coverage
        rows = torch.tensor([3, 0, 0, 4])
        moved = m.step(y[rows], m.reorder_state(state, rows), m.reorder_memory(mem, rows))
        full = m.step(y, state, mem)
    assert torch.allclose(moved[0], full[0][rows], atol=1e-6) and torch.allclose(moved[1].coverage, full[1].coverage[rows])


def test_coverage_loss_equals_direct_computation_and_has_gradients():
    # an independent case: all attention on one source token for T=3 steps -> min(1, 0) + min(1, 1) + min(1, 2) = 2
    a = torch.zeros(1, 3, 4); a[..., 0] = 1
    assert coverage_loss(a, torch.ones(1, 3, dtype=torch.bool)).item() == 2.0
    assert coverage_loss(torch.eye(4)[None, :3], torch.ones(1, 3, dtype=torch.bool)).item() == 0.0   # each token attended once
    m = rnn_model("gru", **OPTIONS["coverage"]).train()
    b = random_batch(seed=8)
    _, alphas = m.forward_batch(b)
    direct, a = 0., alphas.detach()
    for k in range(len(b)):
        C = torch.zeros(alphas.shape[2])
        for i in range(alphas.shape[1]):
            if b.tgt_out[k, i] != PAD: direct += sum(min(float(x), float(c)) for x, c in zip(a[k, i], C))
            C = C + a[k, i]
    aux = m.aux_losses(b, alphas)
    assert set(aux) == {"coverage"} and abs(aux["coverage"].item() - 0.5 * direct) < 1e-4
    aux["coverage"].backward()
    assert m.attention.V_a.grad.abs().sum() > 0 and m.encoder.emb.weight.grad.abs().sum() > 0
    assert rnn_model("gru", coverage_attn=True).aux_losses(b, alphas) == {}    # weight 0: no term at all


def test_registration_and_key_validation():
    small = dict(emb_dim=8, enc_hidden=6, dec_hidden=12, attn_dim=7)
    assert type(build_model(ModelConfig(**small), 23, 29)) is AttentionSeq2Seq                    # defaults: 02's model
    assert type(build_model(ModelConfig(enc_layers=2, **small), 23, 29)) is AttentionSeq2Seq
    for k, v in dict(dec_layers=2, input_feeding=True, attn_score="dot", coverage_attn=True).items():
        assert type(build_model(ModelConfig(**{k: v}, **small), 23, 29)) is RNNSeq2Seq, k
    with pytest.raises(ConfigError, match=r"model\.attn_score: dot needs dec_hidden \(10\) == 2·enc_hidden \(12\)"):
        build_model(ModelConfig(emb_dim=8, enc_hidden=6, dec_hidden=10, attn_score="dot"), 23, 29)
    with pytest.raises(ConfigError, match="coverage_loss: needs coverage_attn"): from_dict(ModelConfig, {"coverage_loss": 1.0})
    with pytest.raises(ConfigError, match="dec_layers: must be >= 1"): from_dict(ModelConfig, {"dec_layers": 0})
    with pytest.raises(ConfigError, match="attn_score: 'bahdanau' is not a valid choice; valid: 'additive', 'general', 'dot'"):
        from_dict(ModelConfig, {"attn_score": "bahdanau"})
    with pytest.raises(ConfigError, match="model.input_feeding: does not apply to arch 'vanilla'"):
        build_model(ModelConfig(arch="vanilla", input_feeding=True), 23, 29)


def test_overfits_100_real_pairs(small_corpus, small_tok):
    "Deep residual GRUs with the dot score and coverage (loss on) memorise 100 Multi30k pairs: the cross-entropy goes to about zero (about 9 s)."
    enc = encode_corpus(small_tok, small_corpus[0].head(100), 50)
    sampler = TokenBatchSampler([len(s) for s in enc.src], [len(t) for t in enc.tgt], max_tokens=0, max_sentences=25, shuffle=False)
    batches = [collate([(i, enc.src[i], enc.tgt[i]) for i in b]) for b in sampler.batches(0)]
    set_seed(0)
    m = build_model(ModelConfig(emb_dim=32, enc_hidden=32, dec_hidden=64, attn_dim=32, dropout_emb=0, dropout_rnn=0, enc_layers=2,
                                dec_layers=2, attn_score="dot", coverage_attn=True, coverage_loss=1.0),
                    small_tok.src_vocab_size, small_tok.tgt_vocab_size).train()
    opt = torch.optim.Adam(m.parameters(), lr=1.5e-2, betas=(0.9, 0.98))
    ce_curve = []
    for step in range(132):                                                # 33 epochs of 4 batches
        b = batches[step % len(batches)]
        logits, alphas = m.forward_batch(b)
        ce = seq2seq_loss(logits, b.tgt_out, reduction="sum")
        opt.zero_grad(); ((ce + m.aux_losses(b, alphas)["coverage"]) / b.n_tokens).backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step()
        ce_curve.append(ce.item() / b.n_tokens)
    assert sum(ce_curve[:4]) / 4 > 5 and sum(ce_curve[-4:]) / 4 < 0.1, ce_curve[-4:]


def test_cli_trains_every_option_together_and_translates(tmp_path):
    run = tmp_path/"run"
    sets = ["model.dec_layers=2", "model.input_feeding=true", "model.attn_score=general", "model.coverage_attn=true",
            "model.coverage_loss=1", "data.train_subset=300", "data.valid_subset=20", "data.vocab_size=300", "train.max_steps=10",
            "train.max_epochs=0", "train.test_beam=0", "train.tensorboard=false", "train.log_every=5"]
    r = run_cli("-m", "seq2seq_nb.train", "--config", "configs/tiny.yaml", "--run-dir", run, *sum((["--set", s] for s in sets), []))
    assert r.returncode == 0, r.stderr.decode()
    records = [json.loads(l) for l in (run/"metrics.jsonl").read_text().splitlines()]
    assert [rec["step"] for rec in records if rec["kind"] == "train" and "aux_coverage" in rec] == [5, 10]   # the hook is logged
    assert load_checkpoint(run/"best.pt")["config"]["model"]["input_feeding"] is True
    r = run_cli("scripts/translate.py", "--ckpt", run/"best.pt", "--src", "-", "--beam", 5, "--coverage", 0.2,
                stdin=b"A man rides a horse.\n\nTwo dogs play in the snow.\n")
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode().split("\n")
    assert len(out) == 4 and out[1] == "" and out[0].strip() and out[2].strip()


def test_dropout_attn_is_refused_where_there_is_no_attention_mlp():
    from seq2seq_nb.core import ConfigError
    with pytest.raises(ConfigError, match="model.dropout_attn: applies only inside the additive score's MLP"):
        build_model(ModelConfig(attn_score="general", dropout_attn=0.1), 30, 30)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_residual_encoder_summary_includes_the_residual_path(cell):
    "With the upper layers' weights at zero, a 3-layer residual encoder gives the 1-layer encoder's states and summary."
    from seq2seq_nb.rnn import ResidualEncoder
    from seq2seq_nb.data import set_seed
    src = torch.tensor([[5, 6, 7, 8, 9, 3], [5, 6, 3, 0, 0, 0], [7, 3, 0, 0, 0, 0]])
    lengths = (src != 0).sum(1)
    set_seed(0); one = ResidualEncoder(20, 4, 5, 1, cell).eval()
    three = ResidualEncoder(20, 4, 5, 3, cell).eval(); three.load_state_dict(one.state_dict(), strict=False)
    with torch.no_grad():
        for p in three.upper.parameters(): p.zero_()
        (o1, s1), (o3, s3) = one(src, lengths), three(src, lengths)
    torch.testing.assert_close(o3, o1); torch.testing.assert_close(s3, s1)
