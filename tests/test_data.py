"""Data pipeline: reading, bad input, tokenization, numericalization, batching."""
import gzip

import pytest
import torch
from hypothesis import given, settings, strategies as st

from seq2seq_nb.data import (BOS, EOS, PAD, DataConfig, DataError, EncodedCorpus, ParallelCorpus, Tokenizer,
                             TokenBatchSampler, collate, encode_corpus, load_split, make_loader, padding_ratio,
                             read_lines, read_parallel, read_tsv)
from seq2seq_nb.data import ConfigError, from_dict


# ---- reading and bad input ----------------------------------------------------------------------
def test_gzip_and_plain_read_the_same(tmp_path):
    text = "Un chat.\nDeux chiens.\n"
    (tmp_path/"a.txt").write_text(text, encoding="utf-8")
    with gzip.open(tmp_path/"a.txt.gz", "wt", encoding="utf-8") as f: f.write(text)
    assert read_lines(tmp_path/"a.txt") == read_lines(tmp_path/"a.txt.gz") == ["Un chat.", "Deux chiens."]


def test_line_separators_inside_a_sentence_do_not_split_it(tmp_path):
    (tmp_path/"a").write_text("one\u2028still one\r\ntwo\n", encoding="utf-8", newline="")
    assert read_lines(tmp_path/"a") == ["one\u2028still one", "two"]


def test_mismatched_files_name_both_files_and_counts(tmp_path):
    (tmp_path/"x.en").write_text("a\nb\nc\n"); (tmp_path/"x.fr").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"x\.en has 3 lines but .*x\.fr has 2"):
        read_parallel(tmp_path/"x.en", tmp_path/"x.fr")


def test_invalid_utf8_names_file_and_line(tmp_path):
    (tmp_path/"x.fr").write_bytes(b"ok\nstill ok\n\xc3\x28 broken\n")
    with pytest.raises(DataError, match=r"x\.fr:3: invalid UTF-8"):
        read_lines(tmp_path/"x.fr")


def test_truncated_gzip_is_a_clear_error(tmp_path):
    with gzip.open(tmp_path/"x.gz", "wt") as f: f.write("hello\n" * 1000)
    data = (tmp_path/"x.gz").read_bytes(); (tmp_path/"x.gz").write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError, match=r"x\.gz: cannot read"):
        read_lines(tmp_path/"x.gz")


def test_empty_pairs_are_dropped_and_counted(tmp_path):
    (tmp_path/"s").write_text("a\n\n  \nd\ne\n"); (tmp_path/"t").write_text("A\nB\nC\n\nE\n")
    c = read_parallel(tmp_path/"s", tmp_path/"t")
    assert (c.src, c.tgt, c.n_empty) == (["a", "e"], ["A", "E"], 3)


def test_empty_corpus_is_an_error(tmp_path):
    (tmp_path/"s").write_text(""); (tmp_path/"t").write_text("")
    cfg = DataConfig(corpus="files", train_src=str(tmp_path/"s"), train_tgt=str(tmp_path/"t"))
    with pytest.raises(DataError, match="no non-empty sentence pairs"): load_split(cfg, "train")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"nope\.txt: no such file"): read_lines(tmp_path/"nope.txt")


def test_tsv_pairs_ignore_extra_columns(tmp_path):
    (tmp_path/"eng-fra.txt").write_text("Go.\tVa !\tCC-BY 2.0\nRun!\tCours !\tCC-BY 2.0\n\nWow!\tÇa alors !\n")
    c = read_tsv(tmp_path/"eng-fra.txt")
    assert c.src == ["Go.", "Run!", "Wow!"] and c.tgt == ["Va !", "Cours !", "Ça alors !"] and c.n_empty == 1
    (tmp_path/"bad.tsv").write_text("Go.\tVa !\nRun!\n")
    with pytest.raises(DataError, match=r"bad\.tsv:2: expected a tab"): read_tsv(tmp_path/"bad.tsv")


def test_files_corpus_from_config(tmp_path):
    for split in ("train", "valid"):
        (tmp_path/f"{split}.src").write_text("a b\nc d\n"); (tmp_path/f"{split}.tgt").write_text("A B\nC D\n")
    cfg = from_dict(DataConfig, {"corpus": "files", "train_src": str(tmp_path/"train.src"), "train_tgt": str(tmp_path/"train.tgt"),
                                 "valid_src": str(tmp_path/"valid.src"), "valid_tgt": str(tmp_path/"valid.tgt")})
    assert load_split(cfg, "valid").tgt == ["A B", "C D"]
    with pytest.raises(ConfigError, match="data.test_src: not set"): load_split(cfg, "test")


def test_data_config_errors():
    with pytest.raises(ConfigError, match="unknown key \\(did you mean 'vocab_size'\\?\\)"): from_dict(DataConfig, {"vocab_sise": 10})
    with pytest.raises(ConfigError, match="spm_type: 'wordpiece' is not a valid choice; valid: 'bpe', 'unigram'"):
        from_dict(DataConfig, {"spm_type": "wordpiece"})
    with pytest.raises(ConfigError, match="corpus=files needs data.train_src"): from_dict(DataConfig, {"corpus": "files"})


# ---- tokenization ------------------------------------------------------------------------------
def test_special_ids_and_round_trip(small_corpus, small_tok):
    train, valid = small_corpus
    assert small_tok.tgt_id_to_piece([PAD, 1, BOS, EOS]) == ["<pad>", "<unk>", "<bos>", "<eos>"]
    ids = small_tok.encode_tgt(valid.tgt[:200])
    clean = [s for s, i in zip(valid.tgt[:200], ids) if "  " not in s and s == s.strip()]
    assert len(clean) > 150
    assert [small_tok.decode_tgt(i) for i, s in zip(ids, valid.tgt[:200]) if s in clean] == clean
    assert small_tok.decode_tgt([BOS] + ids[0] + [EOS, 5, 6, PAD]) == valid.tgt[0]  # stops at <eos>


def test_separate_and_unigram_vocabularies(small_corpus, tmp_path):
    train, _ = small_corpus
    tok = Tokenizer.train(train, DataConfig(vocab_size=600, joint_vocab=False, spm_type="unigram"))
    assert not tok.joint and tok.src_vocab_size == 600 and tok.tgt_vocab_size == 600
    assert tok.src_model != tok.tgt_model
    assert sorted(p.name for p in tok.save(tmp_path)) == ["src.model", "tgt.model"]
    again = Tokenizer.load(tmp_path)
    assert again.encode_tgt(train.tgt[:50]) == tok.encode_tgt(train.tgt[:50])


def test_vocab_too_large_is_a_config_error():
    with pytest.raises(ConfigError, match="data.vocab_size: SentencePiece could not train"):
        Tokenizer.train(ParallelCorpus(["a b c"] * 5, ["d e f"] * 5), DataConfig(vocab_size=5000))


def test_clipping_counts(small_tok):
    enc = encode_corpus(small_tok, ParallelCorpus(["a man " * 40, "a dog"], ["un chien", "un homme " * 40]), max_len=12)
    assert enc.n_clipped == 2
    assert all(len(s) <= 12 and s[-1] == EOS for s in enc.src) and all(len(t) <= 11 for t in enc.tgt)


def test_training_drops_over_long_pairs_instead_of_clipping(small_tok):
    pairs = ParallelCorpus(["a man " * 40, "a dog", "a cat"], ["un chien", "un homme " * 40, "un chat"])
    enc = encode_corpus(small_tok, pairs, max_len=12, long="drop")
    assert (len(enc), enc.n_dropped, enc.n_clipped) == (1, 2, 0)
    assert enc.tgt == small_tok.encode_tgt(["un chat"]) and enc.src[0][-1] == EOS


@pytest.mark.parametrize("key", ["train_src", "train_tgt", "valid_src", "test_tgt"])
def test_own_files_are_not_ignored_under_multi30k(key):
    with pytest.raises(ConfigError, match=f"{key}: is set but data.corpus is multi30k"):
        from_dict(DataConfig, {"corpus": "multi30k", key: "my.txt"})


# ---- batching ----------------------------------------------------------------------------------
def test_real_batches(small_corpus, small_tok):
    enc = encode_corpus(small_tok, small_corpus[0], 50)
    loader = make_loader(enc, DataConfig(max_tokens=1500), seed=3)
    seen = []
    for b in loader:
        B, S = b.src.shape; T = b.tgt_in.shape[1]
        assert b.src_mask.shape == (B, S) and b.tgt_out.shape == b.tgt_mask.shape == (B, T)
        assert B * max(S, T) <= 1500
        assert torch.equal(b.src_mask.sum(1), b.src_lengths) and b.src_lengths.device.type == "cpu"
        assert (b.tgt_in[:, 0] == BOS).all()
        n = b.tgt_mask.sum(1)
        assert (b.tgt_out[torch.arange(B), n - 1] == EOS).all() and (b.src[torch.arange(B), b.src_lengths - 1] == EOS).all()
        for i, j in enumerate(b.idx.tolist()):  # each row is exactly its pair, padded
            assert b.src[i, :b.src_lengths[i]].tolist() == enc.src[j]
            assert b.tgt_out[i, :n[i]].tolist() == enc.tgt[j] + [EOS]
            assert b.tgt_in[i, :n[i]].tolist() == [BOS] + enc.tgt[j]
        assert (b.src[~b.src_mask] == PAD).all() and (b.tgt_out[~b.tgt_mask] == PAD).all()
        seen += b.idx.tolist()
    assert sorted(seen) == list(range(len(enc)))
    r = padding_ratio(loader)
    assert 0 <= r["tgt"] < 0.05 and 0 <= r["src"] < 0.25


def test_resume_mid_epoch_gives_the_remaining_batches():
    s = TokenBatchSampler([5, 6, 7, 8] * 50, [4, 5, 6, 7] * 50, max_tokens=60, seed=1)
    s.set_epoch(2); full = list(s)
    s.set_epoch(2, start=3); assert list(s) == full[3:] and len(s) == len(full) - 3
    s.set_epoch(3); assert list(s) != full


def test_sentence_limit():
    s = TokenBatchSampler([3] * 25, [3] * 25, max_tokens=0, max_sentences=4)
    assert [len(b) for b in sorted(s.batches(0), key=len)] == [1] + [4] * 6


def test_too_small_token_budget_is_a_config_error():
    with pytest.raises(ConfigError, match="data.max_tokens: 10 is smaller than the longest pair"):
        TokenBatchSampler([5, 20], [5, 5], max_tokens=10)


lengths = st.lists(st.tuples(st.integers(1, 60), st.integers(0, 60)), min_size=1, max_size=300)

@settings(max_examples=60, deadline=None)
@given(pairs=lengths, max_tokens=st.integers(62, 3000), max_sentences=st.integers(0, 50), seed=st.integers(0, 10),
       epoch=st.integers(0, 5))
def test_property_budget_and_exactly_once(pairs, max_tokens, max_sentences, seed, epoch):
    src, tgt = zip(*pairs)
    s = TokenBatchSampler(src, tgt, max_tokens=max_tokens, max_sentences=max_sentences, seed=seed)
    batches = s.batches(epoch)
    assert sorted(i for b in batches for i in b) == list(range(len(pairs)))      # every pair exactly once
    for b in batches:
        assert len(b) * max(max(src[i] for i in b), max(tgt[i] + 1 for i in b)) <= max_tokens
        assert not max_sentences or len(b) <= max_sentences


@settings(max_examples=40, deadline=None)
@given(pairs=lengths, world=st.integers(2, 4), seed=st.integers(0, 5))
def test_property_ranks_are_disjoint_and_equal(pairs, world, seed):
    src, tgt = zip(*pairs)
    per_rank = [TokenBatchSampler(src, tgt, max_tokens=200, seed=seed, rank=r, world_size=world).batches(0) for r in range(world)]
    assert len({len(b) for b in per_rank}) == 1
    flat = [i for bs in per_rank for b in bs for i in b]
    assert len(flat) == len(set(flat))


@settings(max_examples=40, deadline=None)
@given(seqs=st.lists(st.tuples(st.lists(st.integers(4, 99), min_size=0, max_size=12),
                               st.lists(st.integers(4, 99), min_size=0, max_size=12)), min_size=1, max_size=8))
def test_property_collate_masks_match_lengths(seqs):
    items = [(i, s + [EOS], t) for i, (s, t) in enumerate(seqs)]
    b = collate(items)
    assert torch.equal(b.src_mask.sum(1), torch.tensor([len(s) + 1 for s, _ in seqs]))
    assert torch.equal(b.tgt_mask.sum(1), torch.tensor([len(t) + 1 for _, t in seqs]))
    assert (b.tgt_in[:, 0] == BOS).all()
    assert torch.equal(b.tgt_in[:, 1:][b.tgt_mask[:, 1:]], b.tgt_out[:, :-1][b.tgt_mask[:, 1:]])


def test_byte_fallback_leaves_no_unk(small_corpus):
    "Characters never seen in training become UTF-8 byte pieces, so nothing is <unk> and decoding is exact."
    from seq2seq_nb.data import UNK
    train = small_corpus[0]
    plain = Tokenizer.train(train, DataConfig(vocab_size=1000))
    byte = Tokenizer.train(train, DataConfig(vocab_size=1000, byte_fallback=True))
    line = "Ein Mann mit Ω-Hut sieht 🚲 an."
    assert UNK in plain.encode_src([line])[0]
    ids = byte.encode_src([line])[0]
    assert UNK not in ids and byte.src_sp.decode(ids) == line
    with pytest.raises(ConfigError, match="vocab_size: byte_fallback needs more than 256"): DataConfig(vocab_size=200, byte_fallback=True)


def test_train_skip_and_denoising_data(multi30k_cfg):
    "train_skip selects the pairs after the first N; denoise makes every sentence of both sides its own target."
    import dataclasses
    from seq2seq_nb.data import encode_corpus, load_split, make_loader
    full = load_split(dataclasses.replace(multi30k_cfg, train_subset=60), "train")
    rest = load_split(dataclasses.replace(multi30k_cfg, train_skip=50, train_subset=10), "train")
    assert rest.src == full.src[50:60] and rest.tgt == full.tgt[50:60]
    cfg = dataclasses.replace(multi30k_cfg, train_skip=50, train_subset=10, denoise=True, vocab_size=300, noise_mask=0.3)
    mono = load_split(cfg, "train")
    assert mono.src == mono.tgt == full.src[50:60] + full.tgt[50:60]
    tok = Tokenizer.train(mono, cfg)
    enc = encode_corpus(tok, mono, 50, long="drop")
    loader = make_loader(enc, cfg, seed=3)
    def epoch(e):
        loader.batch_sampler.set_epoch(e)
        return {i: (s, t) for b in loader.batch_sampler.batches() for i, s, t in (loader.dataset[j] for j in b)}
    e0, e0_again, e1 = epoch(0), epoch(0), epoch(1)
    assert e0 == e0_again                                                    # reproducible: exact resume
    assert sum(e0[i][0] != e1[i][0] for i in e0) > len(e0) // 2              # fresh noise each epoch
    assert all(e0[i][1] == enc.tgt[i] and e0[i][0][-1] == EOS for i in e0)   # clean targets, sources end with <eos>
    assert sum(s[:-1] != enc.src[i][:-1] for i, (s, _) in e0.items()) > len(e0) // 2
    plain = make_loader(enc, dataclasses.replace(cfg, denoise=False), seed=3)
    assert all(plain.dataset[i][1] == enc.src[i] for i in range(len(enc)))   # no noise unless asked for
