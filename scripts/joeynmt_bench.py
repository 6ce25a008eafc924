"""JoeyNMT side of `scripts/bench.py --joeynmt`: a separate, longer mode (about 90 minutes on 2 CPU cores with the
defaults; JoeyNMT's 1,600 updates take 64 of them, ours 22; `--joey-ours-bf16` adds about 18).

JoeyNMT 2.3.0 is installed from PyPI into its own virtual environment (bench/.joeynmt-venv, torch 2.13.0
first), never vendored. Both toolkits then get, in this same invocation:
  * the same data: Multi30k EN->FR train/dev/test from this project's cache;
  * the same vocabulary: one joint SentencePiece model (this project's tokenizer), handed to JoeyNMT as
    its `model_file` with the pieces as its vocabulary file;
  * the same sizes: embeddings 256, bidirectional GRU encoder 256 per direction, GRU decoder 512,
    Bahdanau-scored attention of size 512, a 512-unit tanh layer before the 8k output layer (JoeyNMT's
    attentional vector; `readout_dim=512` here), dropout 0.3, label smoothing 0.1, untied embeddings;
  * the same number of target tokens per update: JoeyNMT closes a random batch once (longest side + 1) x
    sentences reaches its `batch_size`, padding included, which at our 2,000-token budget gives it about half
    the target tokens of our length-bucketed batches; its `batch_size` is set by simulating its sampler on
    the training data so that the mean target tokens per update match ours (within 2%);
  * the same threads, optimiser, learning-rate schedule (linear warm-up over the config's steps, then inverse
    square root; JoeyNMT's floor `learning_rate_min` set below any rate of the schedule; JoeyNMT sets the rate
    after each update, so it runs one update behind ours and its very first update at the peak; checked on its log), number of updates
    and evaluations (greedy, the whole dev set, every `--joey-eval-every` updates; dev batches of 128
    sentences, our `decode_corpus` default).
Training throughput is each toolkit's own count of target tokens per second (JoeyNMT's log line
"Tokens per Sec", the median after warm-up). Time to a dev BLEU is read from each run's own evaluation log:
the wall-clock minutes from the first update to the start of the first evaluation that reaches that BLEU
(the updates so far and the earlier evaluations; JoeyNMT: its train.log timestamps, from the "EPOCH 1" line to
the evaluation's "Predicting" line; ours: the evaluation record's `time`, to within one update).
Decoding is measured on test_2016_flickr with each toolkit's best-dev checkpoint (models that translate, so
that sentences/s compares decoders rather than output lengths): greedy and beam 5 (alpha 0.6, batches of 64
sentences, made as each toolkit makes them: ours from the test set sorted by length, JoeyNMT's in file
order, sorted within the batch; each toolkit's default output limit: JoeyNMT 1.5 x the longest source of the
batch, ours 1.5 x each source + 10), one warm-up pass, then the median of `--decode-repeats` timed passes (JoeyNMT's own
"Generation took" timing, which excludes scoring; ours times `decode_corpus`). Beside sentences/s: BLEU,
the mean output length in subwords (JoeyNMT's detokenized output re-encoded with the shared SentencePiece
model) and hypothesis-steps per second: the decoder rows each toolkit actually computes per second, counted by
wrapping its decoder's step (sentences x beams x steps; JoeyNMT's greedy search and ours keep finished
sentences in the batch until the batch ends, JoeyNMT's beam search keeps a sentence's finished hypotheses
as rows until all of its beams end, ours computes only open hypotheses).
With `--joey-ours-bf16`, ours is also trained (same settings, its own run) and decoded in bf16 autocast and set
against the same JoeyNMT run: JoeyNMT 2.3 trains in fp32 only on a CPU (its config turns fp16 off there and has no
bf16), so this row compares each toolkit at its fastest on a CPU with bf16 instructions, and says so.
Batching differs as each toolkit does it: JoeyNMT fills random batches up to the token budget counting
padding (max(source, target) length x sentences), this project fills length-bucketed batches.
"""
import json, os, re, shutil, statistics, subprocess, sys, time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT/"bench"/".joeynmt-venv"
WORK = ROOT/"bench"/".joeynmt-work"
MATCHED = ["model.attn_dim=512", "model.readout_dim=512", "model.tie_embeddings=false"]


def ensure_venv() -> Path:
    py = VENV/"bin"/"python"
    if py.exists() and subprocess.run([py, "-c", "import joeynmt.helpers"], capture_output=True).returncode == 0: return py
    print("bench: installing JoeyNMT 2.3.0 into bench/.joeynmt-venv (torch 2.13.0 first) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    for pkgs in (["--upgrade", "pip"], ["torch==2.13.0"], ["joeynmt==2.3.0", "importlib_metadata", "sentencepiece==0.2.0"]):  # what 2.3.0 needs today
        subprocess.run([py, "-m", "pip", "install", "-q", *pkgs], check=True)
    return py


def prepare_data(cfg) -> dict:
    "Plain-text splits and the shared SentencePiece model/vocabulary in bench/.joeynmt-work."
    from seq2seq_nb.data import TokenBatchSampler, Tokenizer, encode_corpus, load_split
    WORK.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, name in (("train", "train"), ("valid", "dev"), ("test", "test")):
        c = load_split(cfg.data, split)
        for side, lines in (("en", c.src), ("fr", c.tgt)):
            (WORK/f"{name}.{side}").write_text("".join(l + "\n" for l in lines), encoding="utf-8")
        paths[name] = str(WORK/name)
        if split == "train": train = c
    tok = Tokenizer.train(train, cfg.data)
    tok.save(WORK)
    enc = encode_corpus(tok, train, cfg.data.max_len, long="drop")      # what our trainer batches
    ours = TokenBatchSampler([len(x) for x in enc.src], [len(x) for x in enc.tgt], cfg.data.max_tokens, shuffle=False).batches()
    paths["ours_target_per_update"] = sum(len(enc.tgt[i]) + 1 for b in ours for i in b) / len(ours)
    paths["lengths"] = ([len(x) - 1 for x in enc.src], [len(x) for x in enc.tgt])   # JoeyNMT's view: subwords without end markers
    (WORK/"vocab.txt").write_text("".join(tok.src_sp.id_to_piece(i) + "\n" for i in range(tok.src_vocab_size)), encoding="utf-8")
    return paths


def joey_target_tokens_per_batch(src_lens, tgt_lens, budget:int, seed:int=0) -> float:
    """Mean target tokens (with <eos>) per batch of JoeyNMT 2.3's TokenBatchSampler at `budget`: random order, a batch
    closes once max(len(src) + 1, len(trg) + 1) x sentences >= budget. Lengths in subwords, without end markers."""
    import random
    order = random.Random(seed).sample(range(len(src_lens)), len(src_lens))
    n_batches = n_tgt = longest = size = 0
    for i in order:
        longest, size = max(longest, src_lens[i] + 1, tgt_lens[i] + 1), size + 1
        n_tgt += tgt_lens[i] + 1
        if longest * size >= budget: n_batches, longest, size = n_batches + 1, 0, 0
    return n_tgt / (n_batches + (size > 0))


def matched_joey_batch_size(src_lens, tgt_lens, target_per_update:float, start:int) -> int:
    "JoeyNMT's `batch_size` whose batches hold `target_per_update` target tokens on average (a few fixed-point steps)."
    b = start
    for _ in range(6):
        b = max(1, round(b * target_per_update / joey_target_tokens_per_batch(src_lens, tgt_lens, b)))
    return b


def joey_config(cfg, paths, updates, eval_every, beam:int=5, load_model=None, batch_size:int=0) -> str:
    d, m, t = cfg.data, cfg.model, cfg.train
    side = lambda lang: {"lang": lang, "level": "bpe", "lowercase": False, "max_length": d.max_len, "voc_file": str(WORK/"vocab.txt"),
                         "tokenizer_type": "sentencepiece", "tokenizer_cfg": {"model_file": str(WORK/"spm.model")}}
    conf = {
        "name": "joey_bench", "joeynmt_version": "2.3.0",
        "data": {"train": paths["train"], "dev": paths["dev"], "test": paths["test"], "dataset_type": "plain",
                 "src": side("en"), "trg": side("fr"),
                 "special_symbols": {"unk_token": "<unk>", "unk_id": 0, "pad_token": "<pad>", "pad_id": 1,
                                     "bos_token": "<bos>", "bos_id": 2, "eos_token": "<eos>", "eos_id": 3}},
        "testing": {"n_best": 1, "beam_size": beam, "beam_alpha": 0.6, "batch_size": 64 if load_model else 128, "batch_type": "sentence",
                    "max_output_length": -1, "eval_metrics": ["bleu"], "sacrebleu_cfg": {"tokenize": "13a"},
                    **({"load_model": str(load_model)} if load_model else {})},
        "training": {"random_seed": t.seed, "optimizer": "adam", "adam_betas": list(t.betas),
                     "learning_rate": t.lr,                  # the schedule's peak (2.3.0 reads no learning_rate_peak); also its first update's rate
                     "learning_rate_min": 1e-9,              # its default floor, 1e-4, would cut the warm-up short
                     "scheduling": "warmupinversesquareroot", "learning_rate_warmup": t.warmup_steps,
                     "batch_size": batch_size or d.max_tokens, "batch_type": "token", "epochs": 100, "updates": updates,
                     "logging_freq": 10, "validation_freq": eval_every, "early_stopping_metric": "bleu",
                     "model_dir": str(WORK/"model"), "overwrite": True,
                     "shuffle": True, "use_cuda": False, "label_smoothing": t.label_smoothing, "normalization": "tokens",
                     "clip_grad_norm": t.clip_norm, "num_workers": 0, "keep_best_ckpts": 1, "print_valid_sents": []},
        "model": {"encoder": {"type": "recurrent", "rnn_type": "gru", "embeddings": {"embedding_dim": m.emb_dim},
                              "hidden_size": m.enc_hidden, "bidirectional": True, "dropout": m.dropout_rnn, "num_layers": 1},
                  "decoder": {"type": "recurrent", "rnn_type": "gru", "embeddings": {"embedding_dim": m.emb_dim},
                              "hidden_size": m.dec_hidden, "attention": "bahdanau", "dropout": m.dropout_rnn,
                              "hidden_dropout": m.dropout_rnn, "num_layers": 1, "input_feeding": True, "init_hidden": "bridge"}},
    }
    import yaml
    p = WORK/f"joey_beam{beam}.yaml"; p.write_text(yaml.safe_dump(conf, sort_keys=False))
    return str(p)


# ---------------------------------------------------------------------------------------------------------
# reading the two toolkits' logs
_TS = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"


def _when(ts: str) -> float: return datetime.strptime(ts, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def joey_evals(train_log: str, validations: str) -> list:
    """JoeyNMT's evaluations during training: [{step, bleu, minutes}], minutes from its "EPOCH 1" log line to the start of
    each evaluation (its "Predicting N example(s)" line: JoeyNMT's "Evaluation result" duration covers the scoring only).
    Steps and BLEU from validations.txt, in the same order."""
    start = re.search(_TS + r" - \w+ - joeynmt\.training - EPOCH 1\s*$", train_log, re.M)
    if not start: raise ValueError("JoeyNMT train.log: no 'EPOCH 1' line (did training start?)")
    starts = [_when(ts) for ts in re.findall(_TS + r" - \w+ - joeynmt\.prediction - Predicting \d+ example", train_log)]
    rows = [(int(s), float(b)) for s, b in re.findall(r"^Steps: (\d+)\t.*?\bbleu: ([\d.]+)", validations, re.M)]
    if len(starts) != len(rows): raise ValueError(f"JoeyNMT logs disagree: {len(starts)} evaluations in train.log, {len(rows)} in validations.txt")
    t0 = _when(start.group(1))
    return [{"step": s, "bleu": b, "minutes": (t - t0) / 60} for (s, b), t in zip(rows, starts)]


def check_joey_schedule(train_log: str, lr: float, warmup: int, rtol: float = 0.02) -> int:
    """JoeyNMT's logged learning rates ("Step: N ... Lr: x") against ours for update N, lr * min(N / warmup, sqrt(warmup / N)).
    (JoeyNMT sets that rate after update N, so it trains update N + 1 with it: one update behind ours.)
    Raises on a mismatch; returns how many lines it checked."""
    pairs = [(int(s), float(x)) for s, x in re.findall(r"Step:\s+(\d+),.*?Lr: ([\d.e-]+)", train_log)]
    if not pairs: raise ValueError("JoeyNMT train.log: no 'Step: ... Lr:' lines")
    for step, got in pairs:
        want = lr * min(step / warmup, (warmup / step) ** 0.5)
        if abs(got - want) > rtol * want + 5e-7:                  # its log rounds to 6 decimals
            raise ValueError(f"JoeyNMT's learning rate at step {step} is {got:g}, ours {want:g}: the schedules differ")
    return len(pairs)


def joey_train_rate(train_log: str) -> float:
    "Median of JoeyNMT's 'Tokens per Sec' log lines after the first third (warm-up)."
    rates = [float(x) for x in re.findall(r"Tokens per Sec:\s+([\d.]+)", train_log)]
    if not rates: raise ValueError("JoeyNMT train.log: no 'Tokens per Sec' lines")
    return statistics.median(rates[len(rates) // 3:])


def our_evals(metrics_jsonl: str) -> list:
    "Our evaluations: [{step, bleu, minutes}] from metrics.jsonl's eval records (`time`: seconds since the first update)."
    recs = [json.loads(l) for l in metrics_jsonl.splitlines() if l.strip()]
    return [{"step": r["step"], "bleu": r["bleu"], "minutes": r["time"] / 60} for r in recs if r["kind"] == "eval"]


def time_to_bleu(evals: list, bleu: float):
    "Minutes until the first evaluation at or above `bleu` (None when no evaluation reached it)."
    return next((e["minutes"] for e in evals if e["bleu"] >= bleu), None)


def compare_time_to_bleu(joey: list, ours: list, thresholds) -> dict:
    out = {}
    for x in thresholds:
        j, o = time_to_bleu(joey, x), time_to_bleu(ours, x)
        out[f"{x:g}"] = {"joeynmt_minutes": j, "ours_minutes": o, "ratio": j / o if j is not None and o else None}
    return out


# ---------------------------------------------------------------------------------------------------------
# JoeyNMT decoding, timed and counted in its own venv
JOEY_DECODE = r'''
import json, logging, statistics, sys
import sentencepiece as spm
from joeynmt.config import load_config, parse_global_args
from joeynmt.prediction import prepare, predict
import joeynmt.decoders as D
cfg_file, repeats, spm_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
args = parse_global_args(load_config(cfg_file), rank=0, mode="test")
model, _, _, test = prepare(args, rank=0, mode="test")
rows, durs = [0], []
fwd = D.RecurrentDecoder.forward
def counted(self, trg_embed, *a, **k):                 # one call per decoding step: the rows it computes, finished ones included
    rows[0] += trg_embed.size(0) * trg_embed.size(1)
    return fwd(self, trg_embed, *a, **k)
D.RecurrentDecoder.forward = counted
class Timing(logging.Handler):
    def emit(self, r):
        m = r.getMessage()
        if m.startswith("Generation took"): durs.append(float(m.split()[2].split("[")[0]))
log = logging.getLogger("joeynmt.prediction"); log.addHandler(Timing()); log.setLevel(logging.INFO)
def once():
    test.reset_indices(random_subset=-1)
    return predict(model=model, data=test, compute_loss=False, device=args.device, rank=0, n_gpu=args.n_gpu,
                   num_workers=args.num_workers, normalization=args.train.normalization, args=args.test, autocast=args.autocast)
once()                                                  # warm-up
rows[0], durs[:] = 0, []
for _ in range(repeats): scores, _, hyps, *_ = once()
t = statistics.median(durs)
sp = spm.SentencePieceProcessor(model_file=spm_file)
print(json.dumps({"sent_per_s": len(hyps) / t, "bleu": scores["bleu"], "sentences": len(hyps),
                  "mean_len": sum(len(sp.encode(h)) for h in hyps) / len(hyps), "hyp_steps_per_s": rows[0] / repeats / t}))
'''


def joey_decode(py, cfg_path, repeats, env) -> dict:
    (WORK/"joey_decode.py").write_text(JOEY_DECODE)
    r = subprocess.run([py, WORK/"joey_decode.py", cfg_path, str(repeats), WORK/"spm.model"], capture_output=True, text=True,
                       env=env, cwd=WORK)
    if r.returncode: sys.exit(f"bench: JoeyNMT decoding failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run(args, ours) -> dict:
    "Train both toolkits matched, read time-to-BLEU from their logs, decode with both; figures and ratios (ours / JoeyNMT)."
    from seq2seq_nb.train import load_config
    py = ensure_venv()
    cfg = load_config(args.config, list(args.set) + MATCHED)
    paths = prepare_data(cfg)
    updates, every = args.joey_updates, args.joey_eval_every
    if updates % every: sys.exit(f"bench: --joey-updates ({updates}) must be a multiple of --joey-eval-every ({every}): "
                                 "our trainer evaluates again at its last update, JoeyNMT does not")
    joey_batch = matched_joey_batch_size(*paths["lengths"], paths["ours_target_per_update"], cfg.data.max_tokens)
    print(f"  target tokens per update: ours {paths['ours_target_per_update']:.0f}; JoeyNMT batch_size {joey_batch} gives "
          f"{joey_target_tokens_per_batch(*paths['lengths'], joey_batch):.0f}", file=sys.stderr)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    shutil.rmtree(WORK/"model", ignore_errors=True)
    t0 = time.time()
    r = subprocess.run([py, "-m", "joeynmt", "train", joey_config(cfg, paths, updates, every, batch_size=joey_batch), "--skip-test"], capture_output=True,
                       text=True, env=env, cwd=WORK)
    if r.returncode: sys.exit(f"bench: JoeyNMT training failed:\n{r.stderr[-3000:]}")
    log = (WORK/"model"/"train.log").read_text()
    check_joey_schedule(log, cfg.train.lr, cfg.train.warmup_steps)
    joey_train, j_evals = joey_train_rate(log), joey_evals(log, (WORK/"model"/"validations.txt").read_text())
    print(f"  joeynmt train: {updates} updates, {time.time() - t0:.0f}s; dev BLEU {[round(e['bleu'], 1) for e in j_evals]}", file=sys.stderr)
    our_train, o_evals = train_ours(args, WORK/"ours", updates, every, env)
    joey_dec = {b: joey_decode(py, joey_config(cfg, paths, updates, every, beam=b, load_model=WORK/"model"/"best.ckpt"),
                               args.decode_repeats, env) for b in (1, 5)}
    our_dec = decode_ours(args, WORK/"ours")
    res = {"updates": updates, "eval_every": every, "target_tokens_per_update": paths["ours_target_per_update"],
           "joeynmt_batch_size": joey_batch, "joeynmt_train_tokens_per_s": joey_train, "ours_train_tokens_per_s": our_train,
           "evals": {"joeynmt": j_evals, "ours": o_evals},
           "time_to_bleu": compare_time_to_bleu(j_evals, o_evals, args.joey_bleu),
           "joeynmt_decode": joey_dec, "ours_decode": our_dec,
           "hyp_steps_per_s": {"joeynmt": {b: joey_dec[b]["hyp_steps_per_s"] for b in (1, 5)},
                               "ours": {b: our_dec[b]["hyp_steps_per_s"] for b in (1, 5)}},
           "length_ratio": {b: our_dec[b]["mean_len"] / joey_dec[b]["mean_len"] for b in (1, 5)},
           "ratio_train": our_train / joey_train, "ratio_beam5": our_dec[5]["sent_per_s"] / joey_dec[5]["sent_per_s"],
           "ratio_greedy": our_dec[1]["sent_per_s"] / joey_dec[1]["sent_per_s"]}
    res["matched_quality"] = quality_matched(joey_dec, our_dec)
    if getattr(args, "joey_ours_bf16", False):              # JoeyNMT 2.3 cannot autocast on a CPU (joeynmt/config.py turns fp16 off)
        rate, evals = train_ours(args, WORK/"ours_bf16", updates, every, env, precision="bf16")
        dec = decode_ours(args, WORK/"ours_bf16", precision="bf16")
        res["ours_bf16"] = {"train_tokens_per_s": rate, "evals": evals, "time_to_bleu": compare_time_to_bleu(j_evals, evals, args.joey_bleu),
                            "decode": dec, "ratio_train": rate / joey_train, "ratio_beam5": dec[5]["sent_per_s"] / joey_dec[5]["sent_per_s"],
                            "matched_quality": quality_matched(joey_dec, dec)}
    res["rows"] = rows(res)
    return res


def train_ours(args, run_dir:Path, updates:int, every:int, env:dict, precision:str="fp32") -> tuple:
    "Our matched training run: its training rate (target tokens/s, the median after the first third) and its evaluations."
    shutil.rmtree(run_dir, ignore_errors=True)
    t0 = time.time()
    o = list(args.set) + MATCHED + [f"train.max_steps={updates}", "train.max_epochs=0", "train.max_minutes=0", f"train.eval_every={every}",
                                    "train.eval_beam=1", "train.eval_sentences=0", "train.patience=0", "train.test_beam=0",
                                    "train.schedule=inverse_sqrt", "train.tensorboard=false", "train.log_every=10", f"train.threads={args.threads}",
                                    f"train.precision={precision}"]
    r = subprocess.run([sys.executable, "-m", "seq2seq_nb.train", "--config", args.config, "--run-dir", str(run_dir),
                        *sum((["--set", x] for x in o), [])], capture_output=True, text=True, env=env, cwd=ROOT)
    if r.returncode: sys.exit(f"bench: our matched training ({precision}) failed:\n{r.stderr[-3000:]}")
    metrics = (run_dir/"metrics.jsonl").read_text()
    rates = [x["tokens_per_s"] for x in map(json.loads, metrics.splitlines()) if x["kind"] == "train"]
    evals = our_evals(metrics)
    print(f"  ours train ({precision}): {updates} updates, {time.time() - t0:.0f}s; dev BLEU {[round(e['bleu'], 1) for e in evals]}", file=sys.stderr)
    return statistics.median(rates[len(rates) // 3:]), evals


def decode_ours(args, run_dir:Path, precision:str="fp32") -> dict:
    "Our decoding figures {1: greedy, 5: beam 5} with the run's best-dev checkpoint, in `precision` (bench.py's decode task)."
    from bench import child
    dec_args = type(args)(**{**vars(args), "ckpt": str(run_dir/"best.pt")})
    d = child("decode", dec_args, ["--precision", precision] + (["--single-sentences", "0"] if precision != "fp32" else []),
              env={"OMP_NUM_THREADS": str(args.threads)})
    return {1: d["greedy"], 5: d["beam5"]}


def quality_matched(joey_dec, our_dec, min_bleu=15.0, max_len_gap=0.10) -> bool:
    "Both toolkits translate (test BLEU above `min_bleu`, greedy and beam) and their mean output lengths are within 10%."
    return all(abs(our_dec[b]["mean_len"] / joey_dec[b]["mean_len"] - 1) <= max_len_gap + 1e-9 and
               min(joey_dec[b]["bleu"], our_dec[b]["bleu"]) > min_bleu for b in joey_dec)


def rows(res) -> dict:
    "The benchmark table's JoeyNMT rows."
    j, o = res["joeynmt_decode"], res["ours_decode"]
    dec = lambda d: (f"{d['sent_per_s']:.1f} sentences/s, {d['hyp_steps_per_s']:,.0f} hyp-steps/s, BLEU {d['bleu']:.1f}, "
                     f"{d['mean_len']:.1f} subwords/sentence")
    out = {"JoeyNMT 2.3 train (matched sizes)": f"{res['joeynmt_train_tokens_per_s']:,.0f} target tokens/s; ours "
                                                 f"{res['ours_train_tokens_per_s']:,.0f} ({res['ratio_train']:.2f}x)"}
    for x, t in res["time_to_bleu"].items():
        mins = lambda m: "not reached" if m is None else f"{m:.1f} min"
        out[f"JoeyNMT 2.3 time to dev BLEU {x}"] = (f"{mins(t['joeynmt_minutes'])}; ours {mins(t['ours_minutes'])}"
                                                    + (f"; JoeyNMT takes {t['ratio']:.2f}x as long" if t["ratio"] else ""))
    for b, name in ((5, "beam 5"), (1, "greedy")):
        out[f"JoeyNMT 2.3 {name} (best dev checkpoints, {res['updates']:,} updates)"] = (
            f"{dec(j[b])}; ours {dec(o[b])}; {o[b]['sent_per_s'] / j[b]['sent_per_s']:.2f}x sentences/s, "
            f"{o[b]['hyp_steps_per_s'] / j[b]['hyp_steps_per_s']:.2f}x hyp-steps/s")
    if not res["matched_quality"]: out["JoeyNMT 2.3 warning"] = "quality not matched (a BLEU <= 15 or output lengths more than 10% apart)"
    if "ours_bf16" in res:                                   # ours in bf16 autocast against JoeyNMT in fp32, its only CPU precision
        b = res["ours_bf16"]
        ttb = "; ".join(f"dev BLEU {x} " + (f"{t['ours_minutes']:.1f} min ({t['ratio']:.2f}x)" if t["ratio"] else
                                             "not reached" if t["ours_minutes"] is None else f"{t['ours_minutes']:.1f} min (JoeyNMT: not reached)")
                        for x, t in b["time_to_bleu"].items())
        out["ours bf16 autocast vs JoeyNMT 2.3 fp32"] = (
            f"train {b['train_tokens_per_s']:,.0f} target tokens/s ({b['ratio_train']:.2f}x); time to {ttb}; beam 5 "
            f"{b['decode'][5]['sent_per_s']:.1f} sentences/s ({b['ratio_beam5']:.2f}x, BLEU {b['decode'][5]['bleu']:.1f}, "
            f"{b['decode'][5]['mean_len']:.1f} subwords/sentence)" + ("" if b["matched_quality"] else "; quality not matched"))
    return out
