#!/usr/bin/env bash
# What runs on a lent GPU machine (the `device` tool of this workplace; see README "Results on a GPU").
# From the repository root of a copy of the working tree that also holds, untracked:
#   .whl/  wheels of fastcore and sacremoses (the machine's image lacks them; it cannot reach a registry)
#   .gpu/multi30k/  the Multi30k mirror;  .gpu/base_cpu.pt  the CPU-trained RNN (configs/bahdanau.yaml, the base until
#                   2026-11-26), optimizer state dropped
#
#   bash scripts/gpu_session.sh start [SECONDS]   benchmark alone, then every training job at once (each its own
#                                                 process on the one GPU, detached so that it outlives the command),
#                                                 watch them until SECONDS after the start (default 540), pack what
#                                                 finished into $OUT
#   bash scripts/gpu_session.sh collect [SECONDS] watch the running jobs until they end or SECONDS pass, pack again
#   bash scripts/gpu_session.sh bench [SECONDS]   the CUDA tests (tests/test_cuda_graphs.py), then the benchmark alone
#                                                 (fp32/TF32/bf16/fp16 products, training at the config's and at larger
#                                                 batches, decoding with and without CUDA graphs) into $OUT, within SECONDS
#
# Jobs: the grid rows of configs/experiments/ still to run (8 epochs, fp32, as on the CPU), the three rows run on
# the CPU (again, to compare machines), configs/bahdanau.yaml (the base until 2026-11-26; its job keeps the name
# base_full) for its full 13 epochs, and the candidates for
# configs/best.yaml (configs/best_candidates/, each with its own number of updates).
set -u
MODE=${1:-start}; SECS=${2:-540}
OUT=${OUT:-/tmp/gpu_out}; W=/tmp/gpu_work; mkdir -p "$OUT" "$W/logs"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "gpu_session: installing .whl/ failed" >&2; exit 1; }
export PYTHONPATH=/tmp/site:$PWD SEQ2SEQ_DATA_MIRROR=$PWD/.gpu/multi30k PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
ONE=(--set train.threads=1 --set train.tensorboard=false)

job() {  # job NAME NICENESS COMMAND...: detached (setsid), its own log
  local name=$1 nice=$2; shift 2
  setsid nohup nice -n "$nice" "$@" >"$W/logs/$name.log" 2>&1 < /dev/null &
  echo "$name $!" >> "$W/jobs"
}

pack() {
  python3 - "$W" "$OUT" <<'EOF'
import json, sys, tarfile, torch
from pathlib import Path
W, OUT = Path(sys.argv[1]), Path(sys.argv[2])
with tarfile.open(OUT/"gpu_results.tgz", "w:gz") as t:
    for p in [*Path("experiments/gpu").rglob("*"), *W.glob("logs/*.log"), *Path("bench/results").glob("gpu-*.json")]:
        if p.is_file(): t.add(p)
    for run in Path("runs").glob("*/*"):
        for f in ("metrics.jsonl", "results.json", "config.yaml"):
            if (run/f).is_file(): t.add(run/f)
for name, run in (("coverage", "runs/experiments/coverage"),):   # for 08's attention side by side
    if (Path(run)/"best.pt").exists():        # weights in fp16, no optimizer: under the 16 MiB a file may have
        c = torch.load(Path(run)/"best.pt", map_location="cpu", weights_only=False)
        c = {k: v for k, v in c.items() if k not in ("optimizer", "scheduler", "scaler", "rng", "rng_ranks")}
        c["model"] = {k: v.half() if v.is_floating_point() else v for k, v in c["model"].items()}
        torch.save(c, OUT/f"{name}_fp16.pt")
print("packed", *(f"{p.name} {p.stat().st_size / 2**20:.1f} MiB" for p in OUT.iterdir()))
EOF
}

watch() {  # until every job has ended or $1 seconds after this script's start; a line per job every 30 s
  local end=$1
  while :; do
    local alive=0
    while read -r name pid; do
      if kill -0 "$pid" 2>/dev/null; then alive=$((alive + 1)); st=run; else st=end; fi
      printf '%-22s %s  %s\n' "$name" "$st" "$(grep -v '^\s*$' "$W/logs/$name.log" | tail -n 1 | cut -c1-150)"
    done < "$W/jobs"
    echo "--- $(date +%T) $alive running"; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
    [ "$alive" = 0 ] || [ $((SECONDS + 30)) -ge "$end" ] && break
    sleep 30
  done
}

if [ "$MODE" = bench ]; then
  nvidia-smi -L; nproc
  python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graphs.py 2>&1 | tee "$OUT/pytest_cuda.log" | tail -n 15
  timeout "$SECS" python3 scripts/bench.py --device cuda --threads 1 --ckpt .gpu/base_cpu.pt --steps 10 --repeats 3 \
      --decode-repeats 3 --single-sentences 20 --out "$OUT/gpu-$(date +%F).json" 2>&1 | tee "$OUT/bench.log" | tail -n 40
  exit
fi
if [ "$MODE" = start ]; then
  nvidia-smi -L; python3 -c "import torch, sentencepiece, sacrebleu, fastcore, sacremoses; print('torch', torch.__version__, torch.version.cuda)"
  nproc
  if [ -f "$W/jobs" ]; then          # a second start on a warm machine would run every job twice into the same folders
    while read -r name pid; do kill -0 "$pid" 2>/dev/null && { echo "gpu_session: $name is still running; use collect" >&2; exit 1; }; done < "$W/jobs"
    rm -f "$W/jobs"
  fi
  timeout 200 python3 scripts/bench.py --device cuda --threads 1 --ckpt .gpu/base_cpu.pt --steps 10 --repeats 3 \
      --decode-repeats 1 --single-sentences 20 --out bench/results/gpu-$(date +%F).json 2>&1 | tee "$W/logs/bench.log" | tail -n 25
  G=(python3 scripts/experiments.py --runs-dir runs/experiments --results-dir experiments/gpu/results "${ONE[@]}")
  C=(python3 scripts/experiments.py --configs-dir configs/best_candidates --runs-dir runs/candidates --results-dir experiments/gpu/candidates "${ONE[@]}")
  job lowres_chain 0 "${G[@]}" --rows lowres_pretrain,lowres_finetune
  for c in transformer_l3 transformer_l4_cosine transformer_d512 gru_long lstm_deep_if; do job "$c" 0 "${C[@]}" --rows "$c"; done
  for r in lstm deep luong coverage bytebpe lowres_scratch; do job "$r" 0 "${G[@]}" --rows "$r"; done
  job base_full 0 python3 scripts/train.py --config configs/bahdanau.yaml --run-dir runs/gpu/base "${ONE[@]}"
  for r in base transformer vanilla; do job "$r" 5 "${G[@]}" --rows "$r"; done
fi
watch "$SECS"
pack
