"""The Transformer (07) behind the model contract: cached steps == parallel forward, padding, checkpoints,
search (greedy, beam, coverage), the key/value cache under beam reordering, training, config checks, the CLI."""
import pytest
import torch

from seq2seq_nb.core import ConfigError, load_checkpoint, save_checkpoint, set_seed, to_dict, from_dict
from seq2seq_nb.data import BOS, EOS, PAD, TokenBatchSampler, collate, encode_corpus
from seq2seq_nb.search import SearchConfig, beam_search, beam_search_single
from seq2seq_nb.train import collate_src, fused_loss, load_config, strip_special
from seq2seq_nb.transformer import TransformerSeq2Seq, causal_mask
from seq2seq_nb.vanilla import ModelConfig, TransformerConfig, build_model, fit, greedy_decode, seq2seq_loss
from conftest import ROOT, run_cli
from helpers import random_batch, assert_batched_equals_single

V = 29


def tiny(seed=0, vocab=V, **kw):
    set_seed(seed)
    c = dict(d_model=16, heads=4, ff_dim=24, enc_layers=2, dec_layers=2, dropout=0.) | kw
    return build_model(ModelConfig(arch="transformer", transformer=TransformerConfig(**c)), vocab, vocab).eval()


def sources(seed=0, vocab=V):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, vocab, (k,), generator=g).tolist() + [EOS] for k in [7, 0, 3, 12, 5, 1]]


@pytest.mark.parametrize("kw", [{}, {"dec_layers": 1, "heads": 1}, {"alphas_layer": 0, "enc_layers": 1, "dec_layers": 3}])
def test_cached_steps_equal_parallel_forward(kw):
    m = tiny(**kw)
    b = random_batch(seed=4, B=7, src_vocab=V, tgt_vocab=V)
    with torch.no_grad():
        logits, alphas = m.forward_batch(b)
        ref_logits, ref_alphas = m.forward_stepwise(b.src, b.src_mask, b.src_lengths, b.tgt_in)
        feats = m.forward_batch(b, features=True)[0]
    assert logits.shape == (7, b.tgt_in.shape[1], V) and alphas.shape == (7, b.tgt_in.shape[1], b.src.shape[1])
    assert torch.allclose(logits, ref_logits, atol=1e-5) and torch.allclose(alphas, ref_alphas, atol=1e-5)
    assert torch.allclose(alphas.sum(-1), torch.ones(alphas.shape[:2]), atol=1e-6)
    assert alphas.masked_select(~b.src_mask[:, None, :]).abs().sum() == 0
    assert torch.allclose(torch.nn.functional.linear(feats, *m.generator.output_layer()), logits, atol=1e-5)


def test_prefix_in_chunks_equals_forward():
    "The decoder takes any number of new positions after its cache: 2 + 3 + 1 positions == all 6 at once."
    m = tiny(seed=1)
    b = random_batch(seed=2, B=3, max_tgt=5, src_vocab=V, tgt_vocab=V)
    with torch.no_grad():
        full = m.forward_batch(b)[0]
        mem = m.encode(b.src, b.src_mask, b.src_lengths)
        state, out, t = m.init_state(mem), [], 0
        for n in (2, 3, 1):
            x, state, _ = m.decoder(m.embed(b.tgt_in[:, t:t + n], start=t), state, mem.cross, mem.src_mask, causal_mask(n, t))
            out.append(m.generator(x)); t += n
    assert torch.allclose(torch.cat(out, 1), full, atol=1e-5)


def test_alone_equals_in_padded_batch():
    m = tiny(seed=2)
    b = random_batch(seed=3, B=6, src_vocab=V, tgt_vocab=V)
    assert (~b.src_mask).any() and (~b.tgt_mask).any()                   # padding on both sides
    with torch.no_grad():
        logits, alphas = m.forward_batch(b)
        for i in range(len(b)):
            S_i, T_i = int(b.src_lengths[i]), int(b.tgt_mask[i].sum())
            one = collate([(0, b.src[i, :S_i].tolist(), b.tgt_out[i, :T_i - 1].tolist())])
            l1, a1 = m.forward_batch(one)
            assert torch.allclose(l1[0], logits[i, :T_i], atol=1e-5)
            assert torch.allclose(a1[0], alphas[i, :T_i, :S_i], atol=1e-5)


def test_checkpoint_round_trip(tmp_path):
    m = tiny(seed=1)
    cfg = ModelConfig(arch="transformer", transformer=TransformerConfig(d_model=16, heads=4, ff_dim=24, enc_layers=2, dec_layers=2, dropout=0.))
    save_checkpoint(tmp_path/"m.pt", {"model": m.state_dict(), "config": {"model": to_dict(cfg)}})
    ck = load_checkpoint(tmp_path/"m.pt")
    set_seed(5)
    m2 = build_model(from_dict(ModelConfig, ck["config"]["model"]), V, V).eval()
    b = random_batch(seed=6, src_vocab=V, tgt_vocab=V)
    with torch.no_grad(): assert not torch.allclose(m.forward_batch(b)[0], m2.forward_batch(b)[0])
    m2.load_state_dict(ck["model"])
    assert "embed.pe" not in ck["model"]                                  # the sinusoids are recomputed, not stored
    with torch.no_grad(): assert torch.equal(m.forward_batch(b)[0], m2.forward_batch(b)[0])
    d1, d2 = (greedy_decode(x, b.src, b.src_mask, b.src_lengths) for x in (m, m2))
    assert torch.equal(d1.tokens, d2.tokens) and torch.equal(d1.scores, d2.scores)
    assert m2.generator.output_layer()[0] is m2.embed.emb.weight          # still tied after loading


@pytest.mark.parametrize("seed", [0, 1])
def test_beam_one_is_greedy(seed):
    m = tiny(seed=seed, vocab=13)
    src = collate_src(sources(seed, 13))
    greedy = greedy_decode(m, *src)
    for i, hyps in enumerate(beam_search(m, *src, SearchConfig(beam=1, alpha=0.6))):
        assert hyps[0].tokens == strip_special(greedy.tokens[i])
        assert abs(hyps[0].logprob - float(greedy.scores[i])) < 1e-4


@pytest.mark.parametrize("cfg", [SearchConfig(beam=4, alpha=0.6, n_best=4), SearchConfig(beam=3, alpha=1.0, coverage=0.4, n_best=2),
                                 SearchConfig(beam=5, alpha=0.0, coverage=1.0, max_len_a=0.5, max_len_b=3, n_best=5)])
def test_batched_beam_equals_single_sentence(cfg):
    assert_batched_equals_single(tiny(seed=3, vocab=13), sources(2, 13), cfg)


def test_reorder_state_reorders_the_cache():
    "After reordering, each row continues its own history; a state whose cache kept the old order would not."
    m = tiny(seed=4)
    src = collate_src([[5, 6, 7, EOS], [8, 9, EOS]])
    hist = torch.tensor([[BOS, 11, 12], [BOS, 20, 21]])
    mem = m.encode(*src)
    st = m.init_state(mem)
    with torch.no_grad():
        for y in hist.unbind(1): _, st, _ = m.step(y, st, mem)
        rows = torch.tensor([1, 0, 1])
        moved = m.reorder_state(st, rows)
        assert all(torch.equal(kv.k, old.k[rows]) and torch.equal(kv.v, old.v[rows]) for kv, old in zip(moved, st))
        y = torch.tensor([13, 14, 15])
        out = m.step(y, moved, m.reorder_memory(mem, rows))[0]
        fresh = m(*(t[rows] for t in src), torch.cat([hist[rows], y[:, None]], 1))[0][:, -1]
        assert torch.allclose(out, fresh, atol=1e-5)
        kept = tuple(type(kv)(kv.k[[0, 1, 1]], kv.v[[0, 1, 1]]) for kv in st)   # cache rows not moved with the beams
        stale = m.step(y, kept, m.reorder_memory(mem, rows))[0]
        assert not torch.allclose(stale[:2], fresh[:2], atol=1e-3)


def test_overfits_100_real_pairs(small_corpus, small_tok):
    pairs = small_corpus[0].head(100)
    enc = encode_corpus(small_tok, pairs, 50)
    sampler = TokenBatchSampler([len(s) for s in enc.src], [len(t) for t in enc.tgt], max_tokens=0, max_sentences=25, shuffle=False)
    batches = [collate([(i, enc.src[i], enc.tgt[i]) for i in b]) for b in sampler.batches(0)]
    set_seed(0)
    cfg = ModelConfig(arch="transformer", transformer=TransformerConfig(d_model=64, heads=4, ff_dim=128, enc_layers=1, dec_layers=1, dropout=0.))
    m = build_model(cfg, small_tok.src_vocab_size, small_tok.tgt_vocab_size)
    losses = fit(m, batches, steps=200, lr=3e-3)
    assert sum(losses[-4:]) / 4 < 0.05, losses[-4:]
    m.eval()
    b = batches[0]
    out = greedy_decode(m, b.src, b.src_mask, b.src_lengths)
    exact = sum(small_tok.decode_tgt(t) == small_tok.decode_tgt(enc.tgt[j]) for t, j in zip(out.tokens, b.idx.tolist()))
    assert exact >= 0.9 * len(b)


def test_fused_loss_on_transformer_features():
    m = tiny(seed=5).train()
    b = random_batch(seed=7, src_vocab=V, tgt_vocab=V)
    feats, _ = m.forward_batch(b, features=True)
    ref = seq2seq_loss(m.forward_batch(b)[0], b.tgt_out, 0.1, reduction="sum")
    assert torch.allclose(fused_loss(feats, m.generator, b.tgt_out, 0.1), ref, atol=1e-4)


def test_config_validation():
    for key, value in [("emb_dim", 64), ("tie_embeddings", True), ("cell", "lstm"), ("enc_layers", 2)]:
        with pytest.raises(ConfigError, match=f"model.{key}: does not apply to arch 'transformer'"):
            build_model(ModelConfig(arch="transformer", **{key: value}), 50, 50)
    with pytest.raises(ConfigError, match="model.transformer: does not apply to arch 'attention'"):
        build_model(ModelConfig(arch="attention", transformer=TransformerConfig(heads=8)), 50, 50)
    with pytest.raises(ConfigError, match="heads: d_model=10 is not divisible by heads=4"):
        TransformerConfig(d_model=10, heads=4)
    with pytest.raises(ConfigError, match="alphas_layer"):
        TransformerConfig(dec_layers=2, alphas_layer=2)
    with pytest.raises(ConfigError, match="data.joint_vocab"):
        build_model(ModelConfig(arch="transformer"), 100, 120)
    with pytest.raises(ConfigError, match="model.transformer.heads: d_model=128 is not divisible"):
        load_config(ROOT/"configs/tiny_transformer.yaml", ["model.transformer.heads=3"])
    with pytest.raises(ConfigError, match="model.dec_hidden: does not apply"):
        load_config(ROOT/"configs/tiny_transformer.yaml", ["model.dec_hidden=64"])
    cfg = load_config(ROOT/"configs/tiny_transformer.yaml")
    assert cfg.model.arch == "transformer" and cfg.data.joint_vocab and cfg.train.schedule == "inverse_sqrt"


def test_cli_trains_and_translates_with_beam(tmp_path):
    sets = {"data.train_subset": 300, "data.valid_subset": 20, "data.vocab_size": 300, "train.max_steps": 10,
            "train.max_epochs": 0, "train.test_beam": 0, "train.tensorboard": "false"}
    r = run_cli("-m", "seq2seq_nb.train", "--config", "configs/tiny_transformer.yaml", "--run-dir", tmp_path/"run",
                *sum((["--set", f"{k}={v}"] for k, v in sets.items()), []))
    assert r.returncode == 0, r.stderr.decode()
    assert (tmp_path/"run"/"best.pt").exists() and b"model: transformer" in r.stdout
    text = b"A man rides a horse.\n\nTwo dogs play in the snow.\n"
    r = run_cli("scripts/translate.py", "--ckpt", tmp_path/"run"/"best.pt", "--src", "-", "--beam", 5, stdin=text)
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stdout.decode().split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[0].strip() and lines[2].strip()
