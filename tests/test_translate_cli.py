"""The translate command on real and bad input: one output line per input line, clear errors, no tracebacks."""
import gzip, os, stat

import pytest

from seq2seq_nb.search import SearchConfig, Translator
from conftest import run_cli


def translate(ckpt, *args, stdin=None, **kw):
    return run_cli("scripts/translate.py", "--ckpt", ckpt, *args, stdin=stdin, **kw)


def test_one_line_per_input_line_blank_lines_included(tiny_run, tmp_path):
    src = tmp_path/"in.en"
    src.write_text("A man rides a horse.\n\n   \nTwo children are playing.\nA dog.\n", encoding="utf-8")
    r = translate(tiny_run/"best.pt", "--src", src, "--out", tmp_path/"out.fr", preexec_fn=lambda: os.umask(0o022))
    assert r.returncode == 0, r.stderr.decode()
    assert stat.S_IMODE((tmp_path/"out.fr").stat().st_mode) == 0o644          # what the umask gives, not mkstemp's 0600
    out = (tmp_path/"out.fr").read_text(encoding="utf-8").split("\n")
    assert len(out) == 6 and out[-1] == "" and out[1] == "" and out[2] == ""
    assert all(out[i].strip() for i in (0, 3, 4))


def test_stdin_stdout_gzip_and_determinism(tiny_run, tmp_path):
    text = b"A woman is reading a book.\nPeople walk on the street.\n"
    with gzip.open(tmp_path/"in.en.gz", "wb") as f: f.write(text)
    a = translate(tiny_run/"best.pt", "--src", "-", stdin=text)
    b = translate(tiny_run/"best.pt", "--src", tmp_path/"in.en.gz")
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout and a.stdout.count(b"\n") == 2


def test_empty_file_gives_empty_output(tiny_run, tmp_path):
    (tmp_path/"empty").write_text("")
    r = translate(tiny_run/"best.pt", "--src", tmp_path/"empty", "--out", tmp_path/"out")
    assert r.returncode == 0 and (tmp_path/"out").read_text() == ""


def test_very_long_lines_are_clipped_and_translated(tiny_run, tmp_path):
    (tmp_path/"long").write_text("a man " * 2000 + "\nA cat.\n")
    r = translate(tiny_run/"best.pt", "--src", tmp_path/"long", "--max-src-len", 100)
    assert r.returncode == 0 and r.stdout.count(b"\n") == 2
    assert b"1 line(s) longer than 100 subwords were clipped" in r.stderr


def test_invalid_utf8_names_file_and_line(tiny_run, tmp_path):
    (tmp_path/"bad.en").write_bytes(b"A man.\nA dog \xe9 runs.\n")
    r = translate(tiny_run/"best.pt", "--src", tmp_path/"bad.en")
    err = r.stderr.decode()
    assert r.returncode == 2 and "bad.en:2: invalid UTF-8" in err and "Traceback" not in err and err.count("\n") == 1
    r = translate(tiny_run/"best.pt", "--src", "-", stdin=b"ok\n\xff\n")
    assert r.returncode == 2 and "<stdin>:2: invalid UTF-8" in r.stderr.decode()


def test_n_best_format(tiny_run, tmp_path):
    "Moses n-best: `id ||| hypothesis ||| features ||| score`, the score = logprob / lp; the file gets the umask's mode."
    r = translate(tiny_run/"best.pt", "--src", "-", "--beam", 4, "--n-best", 3, "--out", tmp_path/"nbest",
                  stdin=b"A dog runs.\n\nA man sits.\n", preexec_fn=lambda: os.umask(0o027))
    assert r.returncode == 0, r.stderr.decode()
    assert stat.S_IMODE((tmp_path/"nbest").stat().st_mode) == 0o640
    lines = (tmp_path/"nbest").read_text().splitlines()
    fields = [l.split(" ||| ") for l in lines]
    assert all(len(f) == 4 for f in fields), lines
    ids = [int(f[0]) for f in fields]
    assert ids[:3] == [0, 0, 0] and 1 in ids and ids[-3:] == [2, 2, 2]
    for f in fields:
        feats = f[2].split()
        assert feats[0] == "logprob=" and feats[2] == "lp=" and len(feats) == 4, f
        if f[1]: assert float(f[3]) == pytest.approx(float(feats[1]) / float(feats[3]), rel=1e-4)
    scores = [float(f[3]) for f in fields if f[0] == "0"]
    assert scores == sorted(scores, reverse=True)


def test_reference_scoring_and_mismatch(tiny_run, tmp_path):
    (tmp_path/"s").write_text("A man.\nA dog.\n"); (tmp_path/"r").write_text("Un homme.\nUn chien.\n")
    r = translate(tiny_run/"best.pt", "--src", tmp_path/"s", "--ref", tmp_path/"r")
    err = r.stderr.decode()
    assert r.returncode == 0 and "BLEU" in err and "case:mixed" in err and "chrF" in err
    (tmp_path/"r").write_text("Un homme.\n")
    r = translate(tiny_run/"best.pt", "--src", tmp_path/"s", "--ref", tmp_path/"r")
    assert r.returncode == 2 and "has 1 lines but" in r.stderr.decode()


def test_split_of_the_checkpoint_corpus(tiny_run, tmp_path):
    r = translate(tiny_run/"best.pt", "--split", "valid", "--out", tmp_path/"v.fr", "--beam", 2)
    assert r.returncode == 0, r.stderr.decode()
    assert len((tmp_path/"v.fr").read_text().splitlines()) == 40 and b"BLEU" in r.stderr


@pytest.mark.parametrize("args,needle", [(["--beam", "0"], "beam: must be >= 1"), (["--n-best", "9"], "n_best: must be between 1 and beam"),
                                         (["--precision", "fp16"], "fp16 needs a CUDA device")])
def test_bad_options(tiny_run, args, needle):
    r = translate(tiny_run/"best.pt", "--src", "-", *args, stdin=b"A man.\n")
    assert r.returncode == 2 and needle in r.stderr.decode()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", None])
def test_unusable_checkpoints(tmp_path, tiny_run, content):
    p = tmp_path/"x.pt"
    if content is None: p.write_bytes((tiny_run/"best.pt").read_bytes()[:5000])
    else: p.write_bytes(content)
    r = translate(p, "--src", "-", stdin=b"A man.\n")
    err = r.stderr.decode()
    assert r.returncode == 2 and str(p) in err and "Traceback" not in err and err.count("\n") == 1
    r = translate(tmp_path/"missing.pt", "--src", "-", stdin=b"A man.\n")
    assert r.returncode == 2 and "no such checkpoint" in r.stderr.decode()


def test_translator_api(tiny_run):
    t = Translator.from_checkpoint(tiny_run/"best.pt")
    out = t.translate(["A man rides a horse.", ""], SearchConfig(beam=3, n_best=2))
    assert len(out) == 2 and len(out[0]) == 2 and out[1][0].text == ""
    assert out[0][0].hyp.score >= out[0][1].hyp.score


def test_bf16_decoding_runs_under_autocast_and_auto_follows_the_probe(tiny_run, monkeypatch):
    import torch
    import seq2seq_nb.search as S
    seen = []
    search = S.beam_search
    def spy(*a, **k):
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu")); return search(*a, **k)
    monkeypatch.setattr(S, "beam_search", spy)
    lines = ["A man rides a horse.", "Two dogs play in the snow."]
    fp32 = Translator.from_checkpoint(tiny_run/"best.pt").translate(lines, SearchConfig(beam=3))
    bf16 = Translator.from_checkpoint(tiny_run/"best.pt", precision="bf16").translate(lines, SearchConfig(beam=3))
    assert seen == [False, torch.bfloat16]                    # one batch each: fp32 outside autocast, bf16 inside
    assert len(bf16) == len(fp32) == 2 and all(o[0].text for o in bf16)
    for faster, want in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(S, "bf16_is_faster", lambda device, faster=faster: faster)
        assert Translator.from_checkpoint(tiny_run/"best.pt", precision="auto").precision == want
    with pytest.raises(S.ConfigError, match="expected fp32, bf16, fp16 or auto"):
        S.decode_precision("int8", "cpu")
