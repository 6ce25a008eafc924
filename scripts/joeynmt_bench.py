"""JoeyNMT side of `scripts/bench.py --joeynmt` (a separate, longer mode: about 30 minutes on 2 CPU cores).

JoeyNMT 2.3.0 is installed from PyPI into its own virtual environment (bench/.joeynmt-venv, torch 2.13.0
first), never vendored. Both toolkits then get, in this same invocation:
  * the same data: Multi30k EN->FR train/dev/test from this project's cache;
  * the same vocabulary: one joint SentencePiece model (this project's tokenizer), handed to JoeyNMT as
    its `model_file` with the pieces as its vocabulary file;
  * the same sizes: embeddings 256, bidirectional GRU encoder 256 per direction, GRU decoder 512,
    Bahdanau-scored attention of size 512, a 512-unit tanh layer before the 8k output layer (JoeyNMT's
    attentional vector; `readout_dim=512` here), dropout 0.3, label smoothing 0.1;
  * the same batches budget (tokens per batch), threads, optimiser and number of updates.
Training throughput is each toolkit's own count of target tokens per second (JoeyNMT's log line
"Tokens per Sec", the median after warm-up). Decoding speed is measured on test_2016_flickr, greedy and
beam 5 (alpha 0.6, batches of 64 sentences, each toolkit's default output limit: JoeyNMT 1.5 x the longest
source of the batch, ours 1.5 x each source + 10), with the models both toolkits trained for the same
number of updates, and reported with each model's BLEU so that the quality level can be compared.
Batching differs as each toolkit does it: JoeyNMT fills random batches up to the token budget counting
padding (max(source, target) length x sentences), this project fills length-bucketed batches.
"""
import json, os, re, shutil, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT/"bench"/".joeynmt-venv"
WORK = ROOT/"bench"/".joeynmt-work"
MATCHED = ["model.attn_dim=512", "model.readout_dim=512", "model.tie_embeddings=false",
           "train.warmup_steps=100"]                    # a short run: warm up quickly so that both models translate something


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
    from seq2seq_nb.data import Tokenizer, load_split
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
    (WORK/"vocab.txt").write_text("".join(tok.src_sp.id_to_piece(i) + "\n" for i in range(tok.src_vocab_size)), encoding="utf-8")
    return paths


def joey_config(cfg, paths, updates, beam:int=5, load_model=None) -> str:
    d, m, t = cfg.data, cfg.model, cfg.train
    side = lambda lang: {"lang": lang, "level": "bpe", "lowercase": False, "max_length": d.max_len, "voc_file": str(WORK/"vocab.txt"),
                         "tokenizer_type": "sentencepiece", "tokenizer_cfg": {"model_file": str(WORK/"spm.model")}}
    conf = {
        "name": "joey_bench", "joeynmt_version": "2.3.0",
        "data": {"train": paths["train"], "dev": paths["dev"], "test": paths["test"], "dataset_type": "plain",
                 "src": side("en"), "trg": side("fr"),
                 "special_symbols": {"unk_token": "<unk>", "unk_id": 0, "pad_token": "<pad>", "pad_id": 1,
                                     "bos_token": "<bos>", "bos_id": 2, "eos_token": "<eos>", "eos_id": 3}},
        "testing": {"n_best": 1, "beam_size": beam, "beam_alpha": 0.6, "batch_size": 64, "batch_type": "sentence",
                    "max_output_length": -1, "eval_metrics": ["bleu"], "sacrebleu_cfg": {"tokenize": "13a"},
                    **({"load_model": str(load_model)} if load_model else {})},
        "training": {"random_seed": t.seed, "optimizer": "adam", "adam_betas": list(t.betas), "learning_rate": t.lr,
                     "scheduling": "warmupinversesquareroot", "learning_rate_warmup": t.warmup_steps,
                     "batch_size": d.max_tokens, "batch_type": "token", "epochs": 100, "updates": updates,
                     "logging_freq": 10, "validation_freq": 10 ** 9, "model_dir": str(WORK/"model"), "overwrite": True,
                     "shuffle": True, "use_cuda": False, "label_smoothing": t.label_smoothing, "normalization": "tokens",
                     "clip_grad_norm": t.clip_norm, "num_workers": 0, "keep_best_ckpts": 1, "print_valid_sents": []},
        "model": {"encoder": {"type": "recurrent", "rnn_type": "gru", "embeddings": {"embedding_dim": m.emb_dim},
                              "hidden_size": m.enc_hidden, "bidirectional": True, "dropout": m.dropout_rnn, "num_layers": 1},
                  "decoder": {"type": "recurrent", "rnn_type": "gru", "embeddings": {"embedding_dim": m.emb_dim},
                              "hidden_size": m.dec_hidden, "attention": "bahdanau", "dropout": m.dropout_rnn,
                              "hidden_dropout": m.dropout_rnn, "num_layers": 1, "input_feeding": True, "init_hidden": "bridge"}},
    }
    import yaml
    p = WORK/"joey.yaml"; p.write_text(yaml.safe_dump(conf, sort_keys=False))
    return str(p)


def run(args, ours) -> dict:
    "Train and decode with both toolkits, matched; returns figures and ratios (ours / JoeyNMT)."
    from seq2seq_nb.train import load_config
    py = ensure_venv()
    cfg = load_config(args.config, list(args.set) + MATCHED)
    paths = prepare_data(cfg)
    updates = args.joey_updates
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    shutil.rmtree(WORK/"model", ignore_errors=True)
    t0 = time.time()
    r = subprocess.run([py, "-m", "joeynmt", "train", joey_config(cfg, paths, updates), "--skip-test"], capture_output=True,
                       text=True, env=env, cwd=WORK)
    if r.returncode: sys.exit(f"bench: JoeyNMT training failed:\n{r.stderr[-3000:]}")
    log = (WORK/"model"/"train.log").read_text()
    rates = [float(x) for x in re.findall(r"Tokens per Sec:\s+([\d.]+)", log)]
    joey_train = statistics.median(rates[len(rates) // 3:])                 # after warm-up
    print(f"  joeynmt train: {len(rates)} log lines, {time.time() - t0:.0f}s", file=sys.stderr)
    ckpt = sorted((WORK/"model").glob("*.ckpt"), key=lambda p: p.stat().st_mtime)[-1]
    joey_dec, n_test = {}, len((WORK/"test.en").read_text(encoding="utf-8").splitlines())
    for beam in (1, 5):
        cfg_path = joey_config(cfg, paths, updates, beam=beam, load_model=ckpt)
        (WORK/"model"/"test.log").unlink(missing_ok=True)
        r = subprocess.run([py, "-m", "joeynmt", "test", cfg_path], capture_output=True, text=True, env=env, cwd=WORK)
        out = r.stdout + r.stderr + ((WORK/"model"/"test.log").read_text() if (WORK/"model"/"test.log").exists() else "")
        gens = [float(x) for x in re.findall(r"Generation took ([\d.]+)\[sec\]", out)]      # dev, then test
        bleus = re.findall(r"Evaluation result \((?:beam search|greedy)\): bleu:\s+([\d.]+)", out)
        if r.returncode or len(gens) < 2: sys.exit(f"bench: JoeyNMT test failed:\n{out[-3000:]}")
        joey_dec[beam] = {"sent_per_s": n_test / gens[-1], "bleu": float(bleus[-1]) if bleus else None}
    # ours, matched: same updates, then the same decoding
    ours_run = WORK/"ours"
    shutil.rmtree(ours_run, ignore_errors=True)
    o = list(args.set) + MATCHED + [f"train.max_steps={updates}", "train.max_epochs=0", "train.test_beam=0", "train.eval_sentences=1",
                                    "train.schedule=inverse_sqrt", "train.tensorboard=false", "train.log_every=10", f"train.threads={args.threads}"]
    r = subprocess.run([sys.executable, "-m", "seq2seq_nb.train", "--config", args.config, "--run-dir", str(ours_run),
                        *sum((["--set", x] for x in o), [])], capture_output=True, text=True, env=env, cwd=ROOT)
    if r.returncode: sys.exit(f"bench: our matched training failed:\n{r.stderr[-3000:]}")
    recs = [json.loads(l) for l in (ours_run/"metrics.jsonl").read_text().splitlines()]
    our_rates = [x["tokens_per_s"] for x in recs if x["kind"] == "train"]
    our_train = statistics.median(our_rates[len(our_rates) // 3:])
    dec_args = type(args)(**{**vars(args), "ckpt": str(ours_run/"last.pt")})
    from bench import child
    our_dec = child("decode", dec_args, env={"OMP_NUM_THREADS": str(args.threads)})
    res = {"updates": updates, "joeynmt_train_tokens_per_s": joey_train, "ours_train_tokens_per_s": our_train,
           "joeynmt_decode": joey_dec, "ours_decode": {1: our_dec["greedy"], 5: our_dec["beam5"]},
           "ratio_train": our_train / joey_train, "ratio_beam5": our_dec["beam5"]["sent_per_s"] / joey_dec[5]["sent_per_s"],
           "ratio_greedy": our_dec["greedy"]["sent_per_s"] / joey_dec[1]["sent_per_s"]}
    res["rows"] = {
        "JoeyNMT 2.3 train (matched sizes)": f"{joey_train:,.0f} target tokens/s; ours {our_train:,.0f} ({res['ratio_train']:.2f}x)",
        "JoeyNMT 2.3 beam 5": f"{joey_dec[5]['sent_per_s']:.1f} sentences/s (BLEU {joey_dec[5]['bleu']}); ours "
                              f"{our_dec['beam5']['sent_per_s']:.1f} (BLEU {our_dec['beam5']['bleu']:.1f}), {res['ratio_beam5']:.2f}x",
        "JoeyNMT 2.3 greedy": f"{joey_dec[1]['sent_per_s']:.1f} sentences/s (BLEU {joey_dec[1]['bleu']}); ours "
                              f"{our_dec['greedy']['sent_per_s']:.1f} (BLEU {our_dec['greedy']['bleu']:.1f}), {res['ratio_greedy']:.2f}x",
    }
    return res
