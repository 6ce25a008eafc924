"""The experiment grid runner: resumes after SIGKILL and SIGTERM, skips finished rows, writes complete result files."""
import gzip, json, signal, subprocess, sys, time

import pytest

from seq2seq_nb.experiments import GRID, grid_configs, literature_tokenize
from seq2seq_nb.train import load_config
from conftest import ROOT, cli_env

QUICK = ["data.train_subset=600", "data.valid_subset=30", "data.vocab_size=300", "train.save_every=1",
         "train.tensorboard=false", "train.log_every=5"]


def _grid(tmp_path, *extra):
    cmd = [sys.executable, str(ROOT/"scripts/experiments.py"), "--configs", str(tmp_path/"a.yaml"), str(tmp_path/"b.yaml"),
           "--epochs", "1", "--eval-subset", "8", "--runs-dir", str(tmp_path/"runs"), "--results-dir", str(tmp_path/"results"),
           *[a for o in QUICK for a in ("--set", o)], *extra]
    return cmd


def _start_and_signal(cmd, watch, sig, cwd):
    "Start the grid, send `sig` as soon as `watch` exists, return (exit status, output)."
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, env=cli_env(), text=True)
    t0 = time.time()
    while not watch.exists():
        assert p.poll() is None, p.stdout.read()
        assert time.time() - t0 < 120, "the row never wrote last.pt"
        time.sleep(0.02)
    p.send_signal(sig)
    out, _ = p.communicate(timeout=120)
    return p.returncode, out


def test_grid_resumes_and_skips(tmp_path):
    for name in ("a", "b"): (tmp_path/f"{name}.yaml").write_text((ROOT/"configs/tiny.yaml").read_text())
    cmd = _grid(tmp_path)
    rc, out = _start_and_signal(cmd, tmp_path/"runs/a/last.pt", signal.SIGKILL, ROOT)      # a crash mid-row a
    assert rc == -signal.SIGKILL and not (tmp_path/"results/a.json").exists()
    rc, out = _start_and_signal(cmd, tmp_path/"runs/b/last.pt", signal.SIGTERM, ROOT)      # a clean stop mid-row b
    assert "a: resuming" in out and rc == 130 and "b: stopped at step" in out, out
    assert (tmp_path/"results/a.json").exists() and not (tmp_path/"results/b.json").exists()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=300)
    assert r.returncode == 0 and "a: done" in r.stdout and "b: resuming" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=300)
    assert r.returncode == 0 and r.stdout.count("skipping") == 2, r.stdout + r.stderr
    row = json.loads((tmp_path/"results/b.json").read_text())
    assert row["epochs"] == 1 and row["params"] > 0 and row["machine"]["cpu"] and row["tokens_per_s"] > 0
    steps = [s for s, _ in row["dev_curve"]]                             # the stopped and resumed row's evaluations, once each
    assert row["precision"] == "fp32" and steps == sorted(set(steps)) and steps[-1] == row["steps"]
    assert row["machine"]["cpu_capability"] in ("DEFAULT", "AVX2", "AVX512", "ZVECTOR", "VSX", "SVE256", "SVE128")   # AVX2 and AVX-512 machines differ
    for key in ("beam5/valid", "beam5/test", "beam5_cov/test"):
        s = row["scores"][key]
        assert s["sentences"] == 8 and "case:mixed" in s["bleu_signature"] and 0 <= s["lit_bleu"] <= 100 and 0 <= s["unk_rate"] <= 1
    assert any(k.startswith("avg") for k in row["scores"])                # averaged the kept snapshots
    hyps = json.loads(gzip.decompress((tmp_path/"results/b.hyps.json.gz").read_bytes()))
    assert len(hyps["beam5/test"]) == 8
    assert len(list((tmp_path/"runs/b").glob("snap_*.pt"))) <= 4


def test_grid_configs_load_in_order():
    files = grid_configs(ROOT/"configs/experiments")
    assert [f.stem for f in files] == [n for n in GRID if (ROOT/"configs/experiments"/f"{n}.yaml").exists()]
    for f in files:
        cfg = load_config(f)
        assert cfg.name == f.stem and cfg.data.src_lang == "en" and cfg.data.tgt_lang == "fr"
        assert cfg.data.train_subset == (2900 if f.stem in ("lowres_scratch", "lowres_finetune") else 0)
        assert cfg.data.train_skip == (2900 if f.stem == "lowres_pretrain" else 0) and cfg.data.denoise == (f.stem == "lowres_pretrain")
    fine = load_config(ROOT/"configs/experiments/lowres_finetune.yaml")
    assert fine.train.init_from == "runs/experiments/lowres_pretrain/last.pt" and GRID.index("lowres_pretrain") < GRID.index("lowres_finetune")


def test_literature_tokenisation_matches_the_official_files(mirror_dir):
    "Lowercased, Moses-normalised and -tokenised raw references give back the official tokenised Multi30k file."
    official = mirror_dir.parent/"multi30k-tok"/"test_2016_flickr.lc.norm.tok.fr"
    if not official.exists(): pytest.skip("no official tokenised files beside the mirror")
    raw = [l.rstrip("\n") for l in gzip.open(mirror_dir/"test_2016_flickr.fr.gz", "rt", encoding="utf-8")]
    ours, theirs = literature_tokenize(raw, "fr"), official.read_text(encoding="utf-8").splitlines()
    assert len(ours) == len(theirs) and sum(a != b for a, b in zip(ours, theirs)) <= 2


def test_a_row_with_its_own_update_budget_keeps_it(tmp_path):
    "The low-resource rows set train.max_steps: the grid's --epochs must not replace it (nor set the schedule's horizon)."
    from seq2seq_nb.experiments import run_row
    from seq2seq_nb.train import planned_steps
    cfg = (ROOT/"configs/tiny.yaml").read_text().replace("  max_epochs: 3\n", "  max_epochs: 3\n  max_steps: 7\n")
    assert "max_steps: 7" in cfg                                        # and max_epochs: 3, which the runner must drop
    (tmp_path/"own.yaml").write_text(cfg)
    row = run_row(tmp_path/"own.yaml", tmp_path/"runs", tmp_path/"results", epochs=1, eval_subset=4, log=lambda m: None,
                  overrides=[*QUICK, "train.save_every=0"])
    assert row["steps"] == 7 and row["epochs"] < 1                      # its 7 updates, not the grid's 1 epoch
    ran = load_config(tmp_path/"runs/own/config.yaml").train
    assert ran.max_epochs == 0 and planned_steps(ran, steps_per_epoch=21) == 7   # the schedule spans those 7 updates
    (tmp_path/"grid.yaml").write_text((ROOT/"configs/tiny.yaml").read_text())
    row = run_row(tmp_path/"grid.yaml", tmp_path/"runs", tmp_path/"results", epochs=1, eval_subset=4, log=lambda m: None,
                  overrides=[*QUICK, "train.save_every=0"])
    assert row["epochs"] == 1 and row["steps"] > 7                      # an ordinary row: the grid's epoch


def test_the_low_resource_pair_has_the_same_updates_and_best_yaml_its_length():
    from seq2seq_nb.train import planned_steps
    scratch, fine = (load_config(ROOT/f"configs/experiments/{n}.yaml").train for n in ("lowres_scratch", "lowres_finetune"))
    assert scratch.max_steps == fine.max_steps > 0 and scratch.warmup_steps < scratch.max_steps
    best = load_config(ROOT/"configs/best.yaml").train
    assert planned_steps(best, steps_per_epoch=259) == best.max_steps == 10000 and best.test_beam == 5   # not 20 default epochs
    for f in (ROOT/"configs/best_candidates").glob("*.yaml"):
        t = load_config(f).train
        assert t.max_steps and planned_steps(t, 259) == t.max_steps, f


def test_alpha_is_picked_on_dev_and_a_tie_goes_to_the_smaller(monkeypatch):
    import seq2seq_nb.experiments as ex
    dev_bleu = {0.0: 30.0, 0.6: 31.0, 1.0: 31.0, 1.5: 29.0}
    seen = []
    def fake_score(tr, corpus, cfg, lang, limit=0):
        seen.append((corpus, cfg.beam, cfg.alpha)); return {"bleu": dev_bleu[cfg.alpha]}, []
    monkeypatch.setattr(ex, "_score", fake_score)
    r = ex.tune_alpha(None, "DEV", [1.5, 1.0, 0.6, 0.0], "fr")
    assert r == {"dev_bleu": {"1.5": 29.0, "1": 31.0, "0.6": 31.0, "0": 30.0}, "alpha": 0.6}
    assert {c for c, _, _ in seen} == {"DEV"} and {b for _, b, _ in seen} == {5}      # dev only, beam 5


def test_beam_size_and_alpha_are_picked_together_on_dev(monkeypatch):
    "Every (K, α) on dev, beam 5's known figures not searched again; ties go to the smaller beam, then the smaller α."
    import seq2seq_nb.experiments as ex
    dev_bleu = {(5, 0.6): 30.0, (5, 1.0): 31.0, (8, 0.6): 31.0, (8, 1.0): 29.0, (12, 0.6): 30.5, (12, 1.0): 31.0}
    seen = []
    def fake_score(tr, corpus, cfg, lang, limit=0):
        seen.append((corpus, cfg.beam, cfg.alpha)); return {"bleu": dev_bleu[(cfg.beam, cfg.alpha)]}, []
    monkeypatch.setattr(ex, "_score", fake_score)
    r = ex.tune_search(None, "DEV", [0.6, 1.0], [12, 8, 5], "fr", known={"5/0.6": 30.0, "5/1": 31.0})
    assert r["dev_bleu"] == {"12/0.6": 30.5, "12/1": 31.0, "8/0.6": 31.0, "8/1": 29.0, "5/0.6": 30.0, "5/1": 31.0}
    assert (r["beam"], r["alpha"]) == (5, 1.0)                                        # three tie at 31.0: the smallest beam
    assert sorted((b, a) for _, b, a in seen) == [(8, 0.6), (8, 1.0), (12, 0.6), (12, 1.0)] and {c for c, _, _ in seen} == {"DEV"}
    dev_bleu[(8, 0.6)] = 33.0
    assert (lambda r: (r["beam"], r["alpha"]))(ex.tune_search(None, "DEV", [0.6, 1.0], [5, 8, 12], "fr")) == (8, 0.6)


def test_a_run_given_alphas_is_scored_with_the_one_dev_picked(tmp_path):
    from seq2seq_nb.experiments import run_row
    (tmp_path/"tiny.yaml").write_text((ROOT/"configs/tiny.yaml").read_text())
    row = run_row(tmp_path/"tiny.yaml", tmp_path/"runs", tmp_path/"results", epochs=1, eval_subset=6, log=lambda m: None,
                  overrides=[*QUICK, "train.save_every=0"], alphas=(0.0, 2.0))
    sweep = row["alpha_sweep"]
    assert set(sweep["dev_bleu"]) == {"0", "2"} and sweep["alpha"] in (0.0, 2.0)
    assert sweep["dev_bleu"][f"{sweep['alpha']:g}"] == max(sweep["dev_bleu"].values())
    assert row["scores"]["beam5_tuned/valid"]["bleu"] == sweep["dev_bleu"][f"{sweep['alpha']:g}"]   # the same search, scored
    assert {"beam5/test", "beam5_tuned/test"} <= set(row["scores"])


def test_score_run_picks_alpha_on_dev_and_averages_last(monkeypatch, tmp_path):
    "The tuned α must come from dev even where test would pick another; the averaged weights must not leak into the other scores."
    import seq2seq_nb.experiments as ex
    bleu = {("dev", 0.6): 30.0, ("dev", 1.0): 32.0, ("test", 0.6): 40.0, ("test", 1.0): 35.0}
    log = []
    class Model:
        def load_state_dict(self, sd): log.append(("load", sd))
    class Tr: model = Model()
    def fake_score(tr, corpus, cfg, lang, limit=0):
        log.append(("score", corpus, cfg.alpha, cfg.coverage)); return {"bleu": bleu[(corpus, cfg.alpha)]}, [corpus]
    monkeypatch.setattr(ex, "_score", fake_score)
    monkeypatch.setattr(ex, "_has_attention", lambda tr: False)
    monkeypatch.setattr(ex, "average_checkpoints", lambda snaps: "AVG")
    for s in (100, 200): (tmp_path/f"snap_{s:08d}.pt").write_bytes(b"")
    row, hyps = ex.score_run(Tr(), {"valid": "dev", "test": "test"}, "fr", tmp_path, alphas=(0.6, 1.0))
    assert row["alpha_sweep"] == {"dev_bleu": {"0.6": 30.0, "1": 32.0}, "alpha": 1.0}     # test would have said 0.6
    assert row["scores"]["beam5_tuned/test"]["bleu"] == 35.0
    assert set(row["scores"]) == {"beam5/valid", "beam5/test", "beam5_tuned/valid", "beam5_tuned/test", "avg2_beam5/valid", "avg2_beam5/test"}
    first_load = log.index(("load", "AVG"))
    assert all(e[0] == "score" for e in log[:first_load]) and len(log) - first_load == 3       # averaged: loaded, then 2 scores
    assert not any(e[3] for e in log if e[0] == "score")                                        # no coverage variant without attention
    log.clear()
    row, _ = ex.score_run(Tr(), {"valid": "dev", "test": "test"}, "fr", tmp_path, final_step=300)   # snapshots of an older run
    assert not any(k.startswith("avg") for k in row["scores"]) and ("load", "AVG") not in log
    row, _ = ex.score_run(Tr(), {"valid": "dev", "test": "test"}, "fr", tmp_path, final_step=200)
    assert "avg2_beam5/test" in row["scores"]


def test_score_run_picks_the_beam_size_on_dev_too(monkeypatch, tmp_path):
    "search_tuned scores both splits with the (K, α) dev picked, even where test would pick another; beam 5's sweep is reused."
    import seq2seq_nb.experiments as ex
    bleu = {("dev", 5, 0.6): 30.0, ("dev", 5, 1.0): 31.0, ("dev", 12, 0.6): 31.5, ("dev", 12, 1.0): 30.0,
            ("test", 5, 0.6): 40.0, ("test", 5, 1.0): 41.0, ("test", 12, 0.6): 39.0, ("test", 12, 1.0): 42.0}
    calls = []
    def fake_score(tr, corpus, cfg, lang, limit=0):
        calls.append((corpus, cfg.beam, cfg.alpha)); return {"bleu": bleu[(corpus, cfg.beam, cfg.alpha)]}, [corpus]
    monkeypatch.setattr(ex, "_score", fake_score)
    monkeypatch.setattr(ex, "_has_attention", lambda tr: False)
    row, hyps = ex.score_run(object(), {"valid": "dev", "test": "test"}, "fr", tmp_path, alphas=(0.6, 1.0), beams=(5, 12))
    assert (row["search_sweep"]["beam"], row["search_sweep"]["alpha"]) == (12, 0.6)      # test would have said (12, 1.0)
    assert row["scores"]["search_tuned/test"]["bleu"] == 39.0 and row["scores"]["search_tuned/valid"]["bleu"] == 31.5
    assert calls.count(("dev", 5, 1.0)) == 2                    # the α sweep, and beam5_tuned's dev score: not a third time
    row, _ = ex.score_run(object(), {"valid": "dev", "test": "test"}, "fr", tmp_path, beams=(5, 12))   # no α sweep: no search
    assert "search_sweep" not in row and not any(k.startswith("search_tuned") for k in row["scores"])


def test_the_grid_command_wants_alphas_with_beams(capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location("experiments_cli", ROOT/"scripts/experiments.py")
    cli = importlib.util.module_from_spec(spec); spec.loader.exec_module(cli)
    assert cli.main(["--beams", "5", "8", "--list"]) == 2 and "--beams needs --alphas" in capsys.readouterr().err
    assert cli.main(["--alphas", "1", "--beams", "0", "--list"]) == 2 and "beam sizes must be >= 1" in capsys.readouterr().err


def test_a_run_the_train_command_stopped_is_resumed_not_taken_as_finished(tmp_path, monkeypatch):
    "Runs stopped by a SIGTERM before the train command stopped writing results.json have one saying 'stop requested': the grid runner must go on training."
    import seq2seq_nb.experiments as ex
    built = []
    class FakeTrainer:
        def __init__(self, cfg, run_dir, resume=False, **kw): built.append(resume); self.stop_requested = False
        def fit(self): return {"reason": "limit reached", "steps": 10}
    monkeypatch.setattr(ex, "Trainer", FakeTrainer)
    run = tmp_path/"best"; run.mkdir()
    (run/"last.pt").write_bytes(b"x")
    (run/"results.json").write_text(json.dumps({"reason": "stop requested", "steps": 3}))
    assert ex.train_row(load_config(ROOT/"configs/tiny.yaml"), run, log=lambda m: None) == {"reason": "limit reached", "steps": 10}
    assert built == [True]                                                      # resumed from last.pt
    (run/"results.json").write_text(json.dumps({"reason": "limit reached", "steps": 10}))
    assert ex.train_row(load_config(ROOT/"configs/tiny.yaml"), run, log=lambda m: None)["steps"] == 10 and built == [True]   # finished: no training
