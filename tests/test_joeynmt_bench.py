"""`bench.py --joeynmt`'s reading of the two toolkits' logs: time to a dev BLEU and training throughput.

The JoeyNMT files in tests/data are the real train.log (from its "EPOCH 1" line on) and validations.txt of a
60-update JoeyNMT 2.3.0 run made by `scripts/joeynmt_bench.py` on 2026-11-26 (evaluations every 30 updates)."""
import json, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/"scripts"))
import joeynmt_bench as jb  # noqa: E402

LOG = (ROOT/"tests/data/joeynmt_train.log").read_text()
VALID = (ROOT/"tests/data/joeynmt_validations.txt").read_text()


def test_joeynmt_evaluations_are_timed_from_their_start_not_their_scoring():
    ev = jb.joey_evals(LOG, VALID)
    assert [e["step"] for e in ev] == [30, 60]
    assert [e["bleu"] for e in ev] == [0.0, 0.00659]
    # EPOCH 1 at 08:21:23.097; the evaluations' "Predicting" lines at 08:22:51.916 and 08:24:34.586 (their
    # "Evaluation result" lines come 23.7 and 24.2 s later and report only the 0.1 s of scoring)
    assert ev[0]["minutes"] == pytest.approx(88.819 / 60, abs=1e-6)
    assert ev[1]["minutes"] == pytest.approx(191.489 / 60, abs=1e-6)


def test_joeynmt_logs_that_disagree_are_an_error_not_a_silent_zip():
    with pytest.raises(ValueError, match="2 evaluations in train.log, 1 in validations.txt"):
        jb.joey_evals(LOG, VALID.splitlines()[0] + "\n")
    with pytest.raises(ValueError, match="EPOCH 1"):
        jb.joey_evals("\n".join(l for l in LOG.splitlines() if "EPOCH" not in l), VALID)


def test_joeynmt_training_rate_is_the_median_after_the_first_third():
    # its six "Tokens per Sec" lines: 311, 370, 357, 357, 389, 406; after the first two: median of 357, 357, 389, 406
    assert jb.joey_train_rate(LOG) == 373.0
    with pytest.raises(ValueError, match="Tokens per Sec"):
        jb.joey_train_rate("nothing logged")


def _our_metrics(evals):
    recs = [{"kind": "train", "step": 10, "tokens_per_s": 1000.0}]
    recs += [{"kind": "eval", "step": s, "bleu": b, "time": t} for s, b, t in evals]
    recs.append({"kind": "test", "step": 30, "bleu": 99.0})
    return "\n".join(json.dumps(r) for r in recs) + "\n"


def test_time_to_bleu_is_the_first_evaluation_at_or_above_it():
    ours = jb.our_evals(_our_metrics([(100, 12.0, 60.0), (200, 20.0, 120.0), (300, 19.0, 180.0), (400, 31.0, 240.0)]))
    assert [e["minutes"] for e in ours] == [1.0, 2.0, 3.0, 4.0]        # test records are not evaluations
    assert jb.time_to_bleu(ours, 20) == 2.0                             # exactly 20 counts; the later dip does not
    assert jb.time_to_bleu(ours, 25) == 4.0
    assert jb.time_to_bleu(ours, 40) is None
    joey = [{"step": 100, "bleu": 5.0, "minutes": 3.0}, {"step": 200, "bleu": 21.0, "minutes": 6.0}]
    t = jb.compare_time_to_bleu(joey, ours, [20, 25, 40])
    assert t["20"] == {"joeynmt_minutes": 6.0, "ours_minutes": 2.0, "ratio": 3.0}
    assert t["25"] == {"joeynmt_minutes": None, "ours_minutes": 4.0, "ratio": None}
    assert t["40"]["ratio"] is None


def test_the_table_says_when_quality_is_not_matched_or_a_level_not_reached():
    dec = lambda s, b, l: {"sent_per_s": s, "hyp_steps_per_s": 10 * s, "bleu": b, "mean_len": l}
    res = {"updates": 1000, "joeynmt_train_tokens_per_s": 500.0, "ours_train_tokens_per_s": 1500.0, "ratio_train": 3.0,
           "time_to_bleu": jb.compare_time_to_bleu([{"step": 100, "bleu": 21.0, "minutes": 6.0}],
                                                   [{"step": 100, "bleu": 22.0, "minutes": 2.0}], [20, 30]),
           "joeynmt_decode": {1: dec(50, 30.0, 15.0), 5: dec(30, 31.0, 15.0)},
           "ours_decode": {1: dec(150, 33.0, 15.5), 5: dec(90, 34.0, 15.2)}, "matched_quality": True}
    rows = jb.rows(res)
    assert rows["JoeyNMT 2.3 time to dev BLEU 20"] == "6.0 min; ours 2.0 min; JoeyNMT takes 3.00x as long"
    assert rows["JoeyNMT 2.3 time to dev BLEU 30"] == "not reached; ours not reached"
    assert "3.00x sentences/s" in rows["JoeyNMT 2.3 beam 5 (best dev checkpoints, 1,000 updates)"]
    assert "JoeyNMT 2.3 warning" not in rows
    assert "JoeyNMT 2.3 warning" in jb.rows({**res, "matched_quality": False})


def test_quality_is_matched_only_when_both_translate_and_lengths_agree():
    d = lambda b, l: {"bleu": b, "mean_len": l}
    joey = {1: d(30.0, 15.0), 5: d(31.0, 15.0)}
    assert jb.quality_matched(joey, {1: d(33.0, 16.5), 5: d(34.0, 13.5)})          # 10% apart: the boundary is in
    assert not jb.quality_matched(joey, {1: d(33.0, 16.6), 5: d(34.0, 15.0)})      # greedy 10.7% longer
    assert not jb.quality_matched({**joey, 5: d(15.0, 15.0)}, {1: d(33.0, 15.0), 5: d(34.0, 15.0)})   # BLEU 15 is not > 15


def test_joeynmt_batches_are_simulated_as_its_sampler_makes_them():
    # equal lengths (4 subwords a side: 5 with the end marker): a budget of 10 closes a batch at 2 sentences
    assert jb.joey_target_tokens_per_batch([4] * 6, [4] * 6, 10) == 10.0
    assert jb.joey_target_tokens_per_batch([4] * 5, [4] * 5, 10) == 25 / 3          # 2 + 2 + the last 1, kept
    # the longest side counts, padding included: source 9 (10 with <eos>) fills a budget of 10 alone
    assert jb.joey_target_tokens_per_batch([9, 9], [1, 1], 10) == 2.0
    b = jb.matched_joey_batch_size([4] * 600, [4] * 600, target_per_update=20.0, start=7)
    assert 16 <= b <= 20 and jb.joey_target_tokens_per_batch([4] * 600, [4] * 600, b) == 20.0   # any budget closing at 4 sentences


def test_a_run_whose_updates_are_not_a_multiple_of_the_evaluations_is_refused(tmp_path, monkeypatch):
    import argparse
    monkeypatch.setattr(jb, "ensure_venv", lambda: tmp_path/"python")
    monkeypatch.setattr(jb, "prepare_data", lambda cfg: {"lengths": ([4], [4]), "ours_target_per_update": 5.0})
    a = argparse.Namespace(config=str(ROOT/"configs/bahdanau.yaml"), set=[], threads=1, joey_updates=1000, joey_eval_every=150)
    with pytest.raises(SystemExit, match="multiple of --joey-eval-every"):
        jb.run(a, {})


def test_joeynmt_schedule_is_checked_against_ours_on_its_log():
    # the fixture run: peak 3e-3 after 20 warm-up updates (logged: 0.0015 at step 10, 0.003 at 20, 0.002449 at 30)
    assert jb.check_joey_schedule(LOG, lr=3e-3, warmup=20) == 6
    with pytest.raises(ValueError, match="step 10 is 0.0015, ours 0.0003"):
        jb.check_joey_schedule(LOG, lr=3e-3, warmup=100)          # another warm-up: caught at the first line
    with pytest.raises(ValueError, match="differ"):
        jb.check_joey_schedule(LOG, lr=1e-3, warmup=20)           # another peak (JoeyNMT ignoring the one asked for)


def test_the_bf16_row_compares_against_the_same_joeynmt_run():
    dec = lambda s, b, l: {"sent_per_s": s, "hyp_steps_per_s": 10 * s, "bleu": b, "mean_len": l}
    joey_evals = [{"step": 100, "bleu": 16.0, "minutes": 8.0}, {"step": 200, "bleu": 21.0, "minutes": 16.0}]
    bf16_evals = [{"step": 100, "bleu": 15.5, "minutes": 2.0}, {"step": 200, "bleu": 19.0, "minutes": 4.0}]
    res = {"updates": 200, "joeynmt_train_tokens_per_s": 500.0, "ours_train_tokens_per_s": 1500.0, "ratio_train": 3.0,
           "time_to_bleu": jb.compare_time_to_bleu(joey_evals, joey_evals, [15, 20]),
           "joeynmt_decode": {1: dec(50, 30.0, 15.0), 5: dec(30, 31.0, 15.0)},
           "ours_decode": {1: dec(150, 33.0, 15.5), 5: dec(90, 34.0, 15.2)}, "matched_quality": True,
           "ours_bf16": {"train_tokens_per_s": 2100.0, "ratio_train": 4.2, "evals": bf16_evals, "matched_quality": True,
                         "time_to_bleu": jb.compare_time_to_bleu(joey_evals, bf16_evals, [15, 20]),
                         "decode": {1: dec(210, 33.0, 15.4), 5: dec(126, 34.1, 15.1)}, "ratio_beam5": 4.2}}
    row = jb.rows(res)["ours bf16 autocast vs JoeyNMT 2.3 fp32"]
    assert row.startswith("train 2,100 target tokens/s (4.20x); time to dev BLEU 15 2.0 min (4.00x); dev BLEU 20 not reached;")
    assert "beam 5 126.0 sentences/s (4.20x, BLEU 34.1" in row and "not matched" not in row
    assert "JoeyNMT: not reached" in jb.rows({**res, "ours_bf16": {**res["ours_bf16"], "time_to_bleu": jb.compare_time_to_bleu(
        joey_evals[:1], bf16_evals, [19])}})["ours bf16 autocast vs JoeyNMT 2.3 fp32"]


def test_our_matched_run_trains_in_the_precision_asked_for(tmp_path):
    "train_ours at tiny sizes, in bf16: the run's config says bf16, it evaluates every `every` updates and at its end."
    import argparse, yaml
    from conftest import quick_overrides
    a = argparse.Namespace(config=str(ROOT/"configs/tiny.yaml"), threads=1,
                           set=quick_overrides(**{"data.valid_subset": 16}))
    rate, evals = jb.train_ours(a, tmp_path/"ours", 20, 10, {**__import__("os").environ, "OMP_NUM_THREADS": "1"}, precision="bf16")
    assert yaml.safe_load((tmp_path/"ours"/"config.yaml").read_text())["train"]["precision"] == "bf16"
    assert rate > 0 and [e["step"] for e in evals if e["step"]] == [10, 20] and all(e["minutes"] >= 0 for e in evals)
