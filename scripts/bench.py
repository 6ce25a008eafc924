#!/usr/bin/env python
"""Benchmark seq2seq_nb on this machine: prints a table and writes JSON.

  python scripts/bench.py [--config configs/bahdanau.yaml] [--ckpt runs/bahdanau/best.pt] [--threads 2] [--out FILE]
  python scripts/bench.py --joeynmt     # also run JoeyNMT (installed into its own venv) side by side
  python scripts/bench.py --device cuda --ckpt runs/gpu/base/best.pt   # on a GPU: fp32, bf16 and fp16 (loss scaling)

Measured, each in its own process (so peak memory is per task), every figure the median of several
timed repeats after warm-up:
  * matmul: GFLOP/s of a large torch.matmul in fp32 and bf16 (the peak the MFU is relative to; fp32 measured
    again after the fp32 training row, and the higher of the two counts: a shared machine has slow spells);
  * training throughput (target tokens/s) on real, padded Multi30k batches of the config, fp32 and bf16
    autocast, plus side-by-side measurements of the speed levers (allocator, threads, wait policy);
  * MFU: analytic training FLOPs per target token (encoder, attention, decoder, output layer; forward
    + backward = 3x forward) x tokens/s / the fp32 matmul FLOP/s measured above;
  * decoding on test_2016_flickr: sentences/s for greedy, batched beam 5, and the one-sentence-at-a-time
    beam search (on a subset);
  * peak resident memory of training and of decoding, and resident memory along 250 distinct bf16 training
    batches with oneDNN's kernel caches capped (the default, `limit_onednn_caches`) and at oneDNN's 1,024;
  * a profile of the fp32 training step (`torch.profiler`): the share of its time in matrix products, the rate
    they run at (MFU / that share), and the operators that take the rest.
"""
import argparse, contextlib, datetime, json, os, platform, resource, socket, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------------
# tasks (each runs in a child process: `bench.py --task NAME ...`, prints one JSON line)
def _sync(args):
    if args.device == "cuda":
        import torch; torch.cuda.synchronize()


def task_matmul(args):
    import torch
    out = {}
    if args.device == "cuda":                      # fp32 as IEEE fp32 (TF32 off, torch's default), then TF32, bf16, fp16
        n = 8192
        for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                                  ("bf16", torch.bfloat16, False), ("fp16", torch.float16, False)):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            a, b = torch.randn(n, n, device="cuda", dtype=dtype), torch.randn(n, n, device="cuda", dtype=dtype)
            for _ in range(3): a @ b
            times = []
            for _ in range(args.repeats):
                torch.cuda.synchronize(); t0 = time.perf_counter(); a @ b; torch.cuda.synchronize(); times.append(time.perf_counter() - t0)
            out[name] = {"gflops": 2 * n ** 3 / statistics.median(times) / 1e9, "size": n}
        torch.backends.cuda.matmul.allow_tf32 = False
        return out
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        n, reps = 2048, args.repeats
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        t0 = time.perf_counter(); a @ b; first = time.perf_counter() - t0
        if first > 2:                       # emulated (no bf16 instructions): a smaller product, once
            n, reps = 512, 2
            a, b = a[:n, :n].contiguous(), b[:n, :n].contiguous(); a @ b
        times = []
        for _ in range(reps):
            t0 = time.perf_counter(); a @ b; times.append(time.perf_counter() - t0)
        out[name] = {"gflops": 2 * n ** 3 / statistics.median(times) / 1e9, "size": n}
    return out


@contextlib.contextmanager
def _warm_trainer(args):
    "The config's real `Trainer` (args' precision, threads, device) after `args.warmup` steps, and the next `args.steps` batches."
    import tempfile
    from seq2seq_nb.train import Trainer, load_config
    o = list(args.set) + [f"train.precision={args.precision}", f"train.threads={args.threads}", "train.tensorboard=false",
                          f"train.device={args.device}"]
    if args.max_tokens: o.append(f"data.max_tokens={args.max_tokens}")
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(load_config(args.config, o), Path(d), quiet=True)
        it = iter(tr.loader)                                  # the same batches (epoch 0 order) for every repeat and lever
        warm, timed = [next(it) for _ in range(args.warmup)], [next(it) for _ in range(args.steps)]
        for b in warm: tr.train_step([b])
        _sync(args)
        yield tr, timed


def task_train(args):
    "Target tokens/s of `Trainer.train_step` (the real training step: loss, clipping, Adam, schedule) on real batches."
    from seq2seq_nb.data import padding_ratio
    with _warm_trainer(args) as (tr, timed):
        pad = padding_ratio(tr.loader)
        n = sum(b.n_tokens for b in timed)
        tgt_tok, src_tok = n, sum(int(b.src_mask.sum()) for b in timed)
        span = sum(int((b.tgt_mask.sum(1) * b.src_lengths).sum()) for b in timed)
        rates = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for b in timed: tr.train_step([b])
            _sync(args)
            rates.append(n / (time.perf_counter() - t0))
        cfg = tr.cfg
    import torch
    return {"tokens_per_s": statistics.median(rates), "all": rates, "padding": pad, "src_per_tgt": src_tok / tgt_tok,
            "attn_span": span / tgt_tok, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "batch_tokens": cfg.data.max_tokens,
            **({"peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20} if args.device == "cuda" else {})}


def task_decode(args):
    import torch
    from seq2seq_nb.data import load_split
    from seq2seq_nb.search import SearchConfig, Translator, beam_search_fn, beam_search_single
    from seq2seq_nb.core import autocast
    from seq2seq_nb.train import corpus_scores, decode_corpus, greedy_search, keep_freed_memory
    keep_freed_memory()
    translator = Translator.from_checkpoint(args.ckpt, args.device)
    test = load_split(translator.cfg.data, "test")
    if args.decode_sentences: test = test.head(args.decode_sentences)
    src = translator.encode(test.src, 256)
    model, tok = translator.model, translator.tok
    out = {"sentences": len(src), "checkpoint": str(args.ckpt), "precision": args.precision}
    def timed(fn, n_rep):                                                            # fp32 weights, autocast to args.precision
        ts, res = [], None
        for _ in range(n_rep):
            _sync(args); t0 = time.perf_counter()
            with autocast(torch.device(args.device), args.precision): res = fn()
            _sync(args); ts.append(time.perf_counter() - t0)
        return statistics.median(ts), res
    timed(lambda: decode_corpus(model, src[:64], batch_size=64), 1)                  # warm-up, greedy and beam
    timed(lambda: decode_corpus(model, src[:64], beam_search_fn(beam=5), batch_size=64), 1)
    rows, step = [0], model.step                                                     # count the hypotheses each step computes
    model.step = lambda y, state, memory: (rows.__setitem__(0, rows[0] + len(y)), step(y, state, memory))[1]
    decoded = {}
    for name, search in (("greedy", greedy_search), ("beam5", beam_search_fn(beam=5))):
        rows[0] = 0
        t, hyps = timed(lambda: decode_corpus(model, src, search, batch_size=64), args.decode_repeats)
        decoded[name] = hyps
        out[name] = {"sent_per_s": len(src) / t, "bleu": corpus_scores([tok.tgt_sp.decode(h) for h in hyps], test.tgt)["bleu"],
                     "mean_len": sum(map(len, hyps)) / len(hyps),                    # output subwords per sentence
                     "hyp_steps_per_s": rows[0] / args.decode_repeats / t}          # hypotheses × steps computed, per second
    del model.step
    if args.device == "cuda":                                                        # 04's CUDA-graph greedy decoding
        from seq2seq_nb.search import greedy_graph_search_fn
        timed(lambda: decode_corpus(model, src[:64], greedy_graph_search_fn(), batch_size=64), 1)
        t, hyps = timed(lambda: decode_corpus(model, src, greedy_graph_search_fn(), batch_size=64), args.decode_repeats)
        plain = decoded["greedy"]                                                     # the plain loop's, same precision
        out["greedy_graph"] = {"sent_per_s": len(src) / t, "bleu": corpus_scores([tok.tgt_sp.decode(h) for h in hyps], test.tgt)["bleu"],
                               "mean_len": sum(map(len, hyps)) / len(hyps), "same_as_greedy": sum(a == b for a, b in zip(hyps, plain)) / len(src)}
    if args.single_sentences:
        sub = src[:args.single_sentences]
        t, single = timed(lambda: [beam_search_single(model, s, SearchConfig(beam=5))[0].tokens for s in sub], 1)
        _, batched_sub = timed(lambda: decode_corpus(model, sub, beam_search_fn(beam=5), batch_size=64), 1)   # same precision
        out["beam5_single"] = {"sent_per_s": len(sub) / t, "sentences": len(sub),
                               "same_as_batched": sum(a == b for a, b in zip(single, batched_sub)) / len(sub)}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm", "aten::mv", "aten::addmv_",
              "aten::addmv", "aten::mkldnn_rnn_layer", "aten::mkldnn_rnn_layer_backward"}      # matrix(-vector) products


def task_memory(args):
    """Resident memory over `args.steps` distinct real batches, each trained once (hundreds of batch shapes): with
    oneDNN's kernel caches capped (`limit_onednn_caches`, the default) it levels off; at 1,024 entries it grows."""
    from seq2seq_nb.core import ONEDNN_CACHES
    rss = lambda: int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    with _warm_trainer(args) as (tr, timed):
        every, curve, t0 = max(1, len(timed) // 5), [(0, rss())], time.perf_counter()
        for i, b in enumerate(timed, 1):
            tr.train_step([b])
            if i % every == 0 or i == len(timed): curve.append((i, rss()))
        seconds = time.perf_counter() - t0
    return {"rss_mb": curve, "seconds": seconds, "tokens_per_s": sum(b.n_tokens for b in timed) / seconds,
            "caches": {k: os.environ.get(k) for k in ONEDNN_CACHES}}


def task_profile(args):
    """Where a training step's time goes: `torch.profiler` over the same real batches as `train`, each operator's own
    (self) CPU time as a share of the whole; the matrix products (`MATMUL_OPS`) apart. The profiler's own overhead falls
    on the many small operators, so their shares are upper bounds and the matrix products' share a lower bound."""
    from torch.profiler import ProfilerActivity, profile
    with _warm_trainer(args) as (tr, timed):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for b in timed: tr.train_step([b])
    ev = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in ev)
    ops = sorted(((e.key, e.self_cpu_time_total / total) for e in ev), key=lambda kv: -kv[1])
    return {"matmul_share": sum(s for k, s in ops if k in MATMUL_OPS), "top": ops[:12], "steps": len(timed)}


TASKS = {"matmul": task_matmul, "train": task_train, "decode": task_decode, "profile": task_profile, "memory": task_memory}


# ---------------------------------------------------------------------------------------------------------
# analytic FLOPs
def train_flops_per_target_token(cfg, src_per_tgt, attn_span) -> float:
    "Training FLOPs (forward + backward = 3 x forward) per target token of the attention model, matmuls only."
    m, V = cfg.model, cfg.data.vocab_size
    E, He, Hd, A, C = m.emb_dim, m.enc_hidden, m.dec_hidden, m.attn_dim, 2 * m.enc_hidden
    G = 3 if m.cell == "gru" else 4
    enc_per_src = 2 * (2 * G * He * (E + He))                  # two directions: input and hidden projections
    enc_per_src += 2 * (m.enc_layers - 1) * 2 * G * He * (C + He)
    enc_per_src += 2 * C * A                                   # keys U_a h_j
    dec = 2 * E * G * Hd                                       # W_ie e(y)
    dec += 2 * Hd * (G * Hd + A)                               # [W_hh; W_a] s
    dec += 2 * attn_span * (A + C)                             # v_a energies and the context product over S
    dec += 2 * C * G * Hd                                      # W_ic c
    d = Hd + C
    if m.readout_dim: dec += 2 * d * m.readout_dim; d = m.readout_dim
    if m.tie_embeddings:
        if d != E: dec += 2 * d * E
        dec += 2 * E * V
    else: dec += 2 * d * V
    return 3 * (dec + src_per_tgt * enc_per_src)


# ---------------------------------------------------------------------------------------------------------
def child(task, args, extra=(), env=None):
    cmd = [sys.executable, __file__, "--task", task, "--config", args.config, "--threads", str(args.threads), "--repeats", str(args.repeats),
           "--device", args.device,
           "--steps", str(args.steps), "--warmup", str(args.warmup), *sum((["--set", s] for s in args.set), [])]
    if task == "decode": cmd += ["--ckpt", str(args.ckpt), "--decode-repeats", str(args.decode_repeats),
                                 "--single-sentences", str(args.single_sentences), "--decode-sentences", str(args.decode_sentences)]
    cmd += extra                                                                     # last: they override the above
    e = dict(os.environ, **(env or {}))
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=e)
    if r.returncode: sys.exit(f"bench: task {task} {' '.join(extra)} failed:\n{r.stderr[-3000:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"  {task:7} {' '.join(extra) or '':32} {env or ''} done", file=sys.stderr, flush=True)
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=list(TASKS), help=argparse.SUPPRESS)
    p.add_argument("--config", default=str(ROOT/"configs/bahdanau.yaml"))
    p.add_argument("--set", action="append", default=[], help="config override for the benchmarked model")
    p.add_argument("--ckpt", default=str(ROOT/"runs/bahdanau/best.pt"), help="trained checkpoint for the decoding figures")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda: GPU matmul peaks, fp32/bf16/fp16 training, GPU decoding")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per figure (median reported)")
    p.add_argument("--steps", type=int, default=8, help="training steps (distinct real batches) per timed repeat")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--decode-repeats", type=int, default=3)
    p.add_argument("--single-sentences", type=int, default=100, help="sentences for the one-at-a-time beam baseline")
    p.add_argument("--decode-sentences", type=int, default=0, help="decode only the first N test sentences (0: all 1,000)")
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("--max-tokens", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--gpu-big-batch", type=int, default=16000, help="--device cuda: also train with batches of this many tokens")
    p.add_argument("--no-levers", action="store_true", help="skip the side-by-side lever measurements")
    p.add_argument("--memory-steps", type=int, default=250, help="bf16 training steps of the memory comparison (oneDNN "
                   "caches capped vs oneDNN's default; 0: skip; about 4 minutes at 250 on 2 cores)")
    p.add_argument("--joeynmt", action="store_true", help="also benchmark JoeyNMT 2.3 (own venv) on the same data and sizes")
    p.add_argument("--joey-updates", type=int, default=1600, help="training updates for both toolkits in --joeynmt mode "
                   "(1,600: both translate alike, dev BLEU about 30; about 90 minutes on 2 CPU cores)")
    p.add_argument("--joey-eval-every", type=int, default=100, help="dev evaluations (greedy) every N updates in --joeynmt mode")
    p.add_argument("--joey-bleu", type=float, nargs="+", default=[15, 20, 25], help="dev BLEU levels for time-to-BLEU")
    p.add_argument("--joey-ours-bf16", action="store_true", help="--joeynmt: also train and decode ours in bf16 autocast "
                   "(JoeyNMT 2.3 has no CPU autocast); about a third more time")
    p.add_argument("--out", help="JSON output (default bench/results/<host>-<date>.json)")
    args = p.parse_args()

    if args.task:  # child process
        import torch
        torch.set_num_threads(args.threads)
        print(json.dumps(TASKS[args.task](args)))
        return

    env = {"OMP_NUM_THREADS": str(args.threads)}
    import torch
    from seq2seq_nb.train import load_config, _cpu_name
    from seq2seq_nb.core import ONEDNN_CACHES
    cfg = load_config(args.config, args.set)
    res = {"host": socket.gethostname(), "date": datetime.date.today().isoformat(), "cpu": _cpu_name(),
           "capability": torch.backends.cpu.get_cpu_capability(), "threads": args.threads, "torch": torch.__version__,
           "python": platform.python_version(), "config": args.config, "overrides": args.set}
    print(f"benchmarking {args.config} on {res['cpu']} ({args.threads} threads) ...", file=sys.stderr)
    out = Path(args.out or ROOT/"bench"/"results"/f"{res['host']}-{res['date']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    save = lambda: out.write_text(json.dumps(res, indent=2))   # after each task: a GPU lease or a session can end before the last
    if args.device == "cuda":
        if not torch.cuda.is_available(): sys.exit("bench: --device cuda: this machine has no CUDA device (torch sees none)")
        res["gpu"], res["cuda"] = torch.cuda.get_device_name(), torch.version.cuda
        print(f"  on {res['gpu']} (CUDA {res['cuda']})", file=sys.stderr)
    res["matmul"] = child("matmul", args, env=env); save()
    res["train_fp32"] = child("train", args, ["--precision", "fp32"], env=env)
    flops = train_flops_per_target_token(cfg, res["train_fp32"]["src_per_tgt"], res["train_fp32"]["attn_span"])
    res["train_flops_per_token"] = flops
    res["matmul_again"] = child("matmul", args, env=env)   # a shared machine's slow spell can lower one figure (100 instead of
    peak = max(res["matmul"]["fp32"]["gflops"], res["matmul_again"]["fp32"]["gflops"])   # 170-180 once): the MFU takes the higher
    res["mfu_fp32"] = flops * res["train_fp32"]["tokens_per_s"] / (peak * 1e9); save()
    if args.device == "cpu":                                   # where the fp32 step's time goes: the MFU's explanation
        res["train_profile"] = child("profile", args, env=env); save()
    emulated = args.device == "cpu" and res["matmul"]["bf16"]["gflops"] < 0.25 * res["matmul"]["fp32"]["gflops"]   # no bf16 instructions: a token run
    res["train_bf16"] = child("train", args, ["--precision", "bf16"] + (["--max-tokens", "300", "--repeats", "1", "--steps", "1",
                                              "--warmup", "1"] if emulated else []), env=env)
    res["train_bf16"]["emulated"] = emulated
    if args.device == "cuda":
        res["mfu_bf16"] = flops * res["train_bf16"]["tokens_per_s"] / (res["matmul"]["bf16"]["gflops"] * 1e9)
    from seq2seq_nb.core import bf16_is_faster                   # the probe behind `precision: auto`, beside what it predicts
    torch.set_num_threads(args.threads)
    picks = bf16_is_faster(torch.device(args.device))
    res["precision_auto"] = {"picks": "bf16" if picks else "fp32", "probe": bf16_is_faster.last,
                             "train_bf16_over_fp32": None if emulated else res["train_bf16"]["tokens_per_s"] / res["train_fp32"]["tokens_per_s"]}
    save()
    if args.device == "cuda":                                  # fp16 autocast with loss scaling (GradScaler): CUDA only
        res["train_fp16"] = child("train", args, ["--precision", "fp16"], env=env); save()
        big = ["--max-tokens", str(args.gpu_big_batch)]        # the config's batches leave a GPU mostly idle: how far larger ones go
        res["train_big"] = {p: child("train", args, big + ["--precision", p], env=env) for p in ("fp32", "bf16")}; save()
    if not args.no_levers and args.device == "cpu":
        lever = lambda extra, e: {k: v for k, v in child("train", args, extra, env=e).items() if k in ("tokens_per_s", "peak_rss_mb")}
        res["levers"] = {                                    # each against train_fp32: tokens/s and peak memory
            "default allocator (mmap for large tensors)": lever([], {**env, "SEQ2SEQ_MALLOC": "default"}),
            "fused chunked output layer + loss (train.fused_loss=true)": lever(["--set", "train.fused_loss=true"], env),
            "OMP_WAIT_POLICY=PASSIVE": lever([], {**env, "OMP_WAIT_POLICY": "PASSIVE"}),
            "1 thread": lever(["--threads", "1"], {"OMP_NUM_THREADS": "1"}),
        }
    if args.memory_steps and args.device == "cpu" and not emulated:   # bf16: where the caches grew (6.1 GB peak in a full run)
        mem = ["--precision", "bf16", "--steps", str(args.memory_steps), "--warmup", "0", "--repeats", "1"]
        res["memory_bf16"] = {"capped": child("memory", args, mem, env={**env, **dict.fromkeys(ONEDNN_CACHES, "8")}),
                              "1024": child("memory", args, mem, env={**env, **dict.fromkeys(ONEDNN_CACHES, "1024")})}; save()
    if Path(args.ckpt).exists():
        res["decode"] = child("decode", args, env=env); save()
        if not emulated:                                       # bf16 autocast decoding where bf16 runs natively
            res["decode_bf16"] = child("decode", args, ["--precision", "bf16", "--single-sentences", "0"], env=env)
    else: print(f"bench: no checkpoint at {args.ckpt}: skipping decoding (train one with `make train CONFIG=configs/bahdanau.yaml`)", file=sys.stderr)
    save()                                                     # before the long JoeyNMT mode, again after it
    if args.joeynmt:
        sys.path.insert(0, str(ROOT/"scripts"))
        from joeynmt_bench import run as joey_run
        res["joeynmt"] = joey_run(args, res)
        out.write_text(json.dumps(res, indent=2))
    print(table(res))
    print(f"\nwritten to {out}")


def _auto_row(a:dict) -> str:
    "What `precision: auto` picks on this machine, its probe, and whether the measured training speeds agree."
    ratio = a["train_bf16_over_fp32"]
    measured = "bf16 training not measured (emulated)" if ratio is None else f"bf16 training measured at {ratio:.2f}x fp32"
    agree = ratio is None and a["picks"] == "fp32" or ratio is not None and (ratio > 1) == (a["picks"] == "bf16")
    return f"{a['picks']} ({a['probe']}); {measured}" + ("" if agree else ": the probe disagrees with training")


def table(r) -> str:
    tf, mm = r["train_fp32"], r["matmul"]
    rows = [("CPU", f"{r['cpu']} ({r['capability']}), {r['threads']} threads, torch {r['torch']}")]
    if "gpu" in r: rows.append(("GPU", f"{r['gpu']} (CUDA {r['cuda']})"))
    again = f" (fp32 again after training: {r['matmul_again']['fp32']['gflops']:,.0f}; the MFU uses the higher)" if "matmul_again" in r else ""
    rows += [("matmul " + " / ".join(mm), " / ".join(f"{v['gflops']:,.0f}" for v in mm.values()) + " GFLOP/s" + again),
            ("train fp32", f"{tf['tokens_per_s']:,.0f} target tokens/s (padding {tf['padding']['tgt']:.1%} target, "
                           f"{tf['padding']['src']:.1%} source)"),
            ("train bf16 autocast", f"{r['train_bf16']['tokens_per_s']:,.0f} target tokens/s " + ("(batches of 300 tokens, one step: "
             "no bf16 instructions)" if r["train_bf16"].get("emulated", True) else f"(the same batches; {r['train_bf16']['tokens_per_s'] / tf['tokens_per_s']:.2f}x fp32)")),
            ("train FLOPs per target token", f"{r['train_flops_per_token'] / 1e6:.1f} MFLOP"),
            *([("precision: auto picks", _auto_row(r["precision_auto"]))] if "precision_auto" in r else []),
            ("MFU fp32", f"{r['mfu_fp32']:.1%}")]
    if "train_profile" in r:
        p = r["train_profile"]
        rest = ", ".join([f"{k.removeprefix('aten::')} {s:.0%}" for k, s in p["top"] if k not in MATMUL_OPS][:4])
        rows.append(("train fp32, time in matrix products (profiled)", f"{p['matmul_share']:.0%}, running at "
                     f"{r['mfu_fp32'] / p['matmul_share']:.0%} of the fp32 matmul rate above; the most of the rest: {rest}"))
    if "train_fp16" in r:
        rows += [("train fp16 autocast + loss scaling", f"{r['train_fp16']['tokens_per_s']:,.0f} target tokens/s "
                  f"({r['train_fp16']['tokens_per_s'] / tf['tokens_per_s']:.2f}x fp32)"), ("MFU bf16", f"{r['mfu_bf16']:.1%}"),
                 ("peak GPU memory, training fp32", f"{tf['peak_gpu_mb']:,.0f} MB")]
    for k, v in r.get("train_big", {}).items():
        rows.append((f"train {k}, batches of {v['batch_tokens']:,} tokens", f"{v['tokens_per_s']:,.0f} target tokens/s "
                     f"({v['tokens_per_s'] / (tf if k == 'fp32' else r['train_' + k])['tokens_per_s']:.2f}x the config's "
                     f"{tf['batch_tokens']:,}-token batches; peak GPU memory {v['peak_gpu_mb']:,.0f} MB)"))
    rows += [
            ("peak RSS, training", f"{tf['peak_rss_mb']:,.0f} MB")]
    for k, v in r.get("levers", {}).items():
        v = v if isinstance(v, dict) else {"tokens_per_s": v}             # files before 2026-11-26 kept tokens/s only
        mem = f", peak RSS {v['peak_rss_mb']:,.0f} MB (vs {tf['peak_rss_mb']:,.0f})" if "peak_rss_mb" in v else ""
        rows.append((f"lever: {k}", f"{v['tokens_per_s']:,.0f} target tokens/s (vs {tf['tokens_per_s']:,.0f}){mem}"))
    if "memory_bf16" in r:
        for k, m in r["memory_bf16"].items():
            c = m["rss_mb"]
            rows.append((f"RSS over {c[-1][0]} bf16 steps, oneDNN caches {'capped at ' + m['caches']['LRU_CACHE_CAPACITY'] if k == 'capped' else 'at 1,024'}",
                         " → ".join(f"{v:,.0f}" for _, v in c) + f" MB ({m['tokens_per_s']:,.0f} target tokens/s)"))
    if "decode" in r:
        d = r["decode"]
        rows += [(f"decode {k}", f"{d[k]['sent_per_s']:.1f} sentences/s, {d[k]['hyp_steps_per_s']:,.0f} hypothesis-steps/s "
                  f"(test BLEU {d[k]['bleu']:.1f}, {d[k]['mean_len']:.1f} subwords/sentence)") for k in ("greedy", "beam5")]
        for k in ("greedy", "beam5") if "decode_bf16" in r else ():
            b = r["decode_bf16"][k]
            rows.append((f"decode {k} bf16 autocast", f"{b['sent_per_s']:.1f} sentences/s ({b['sent_per_s'] / d[k]['sent_per_s']:.2f}x fp32; "
                         f"test BLEU {b['bleu']:.1f}, {b['mean_len']:.1f} subwords/sentence)"))
        for k, g in (("fp32", d.get("greedy_graph")), ("bf16", r.get("decode_bf16", {}).get("greedy_graph"))):
            if g: rows.append((f"decode greedy {k}, CUDA graph per step", f"{g['sent_per_s']:.1f} sentences/s ("
                               f"{g['sent_per_s'] / (d if k == 'fp32' else r['decode_bf16'])['greedy']['sent_per_s']:.2f}x the plain loop; "
                               f"test BLEU {g['bleu']:.1f}; {g['same_as_greedy']:.1%} of outputs as the plain loop's)"))
        if "beam5_single" in d:                                  # --single-sentences 0 skips it
            rows.append(("decode beam 5, one sentence at a time", f"{d['beam5_single']['sent_per_s']:.1f} sentences/s "
                         f"(batched is {d['beam5']['sent_per_s'] / d['beam5_single']['sent_per_s']:.1f}x faster)"))
        rows.append(("peak RSS, decoding", f"{d['peak_rss_mb']:,.0f} MB"))
    if "joeynmt" in r:
        j = r["joeynmt"]
        for k, v in j.get("rows", {}).items(): rows.append((k, v))
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k:<{w}} | {v} |" for k, v in [("measure", "value"), ("-" * w, "---")] + rows)


if __name__ == "__main__":
    main()
