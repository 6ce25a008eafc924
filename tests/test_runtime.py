"""oneDNN's kernel caches (`limit_onednn_caches`, 99_core): a training process (`setup_runtime`, which `Trainer` calls
first) caps them unless the user set them, and with the caps resident memory levels off over hundreds of tensor shapes,
where oneDNN's default (1,024) keeps growing; a decoding process keeps the defaults. Each case runs in a fresh process:
oneDNN reads the capacities once, at its first use."""
import json, os, subprocess, sys

import pytest

CACHES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")


def _python(code:str, **env) -> str:
    e = {k: v for k, v in os.environ.items() if k not in CACHES}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**e, "OMP_NUM_THREADS": "1", **env})
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip().splitlines()[-1]


def test_training_caps_the_caches_a_value_the_user_set_wins_and_decoding_keeps_the_defaults():
    show = ("import os, seq2seq_nb.train as T; T.setup_runtime(T.TrainConfig(threads=1, precision='auto')); "
            "print([os.environ[k] for k in %r])" % (CACHES,))
    assert _python(show) == "['8', '8']"
    assert _python(show, LRU_CACHE_CAPACITY="64") == "['8', '64']"
    assert _python("import os, seq2seq_nb.search; print([os.environ.get(k) for k in %r])" % (CACHES,)) == "[None, None]"


# Training-shaped work over 600 distinct shapes: the batch (B, T) of an LSTM (oneDNN runs it in fp32 and bf16), or the
# rows of a bf16 product under autocast (oneDNN runs those on CPUs with bf16 instructions). RSS after 200 shapes and 600.
SHAPES = """
import json, os, sys, torch
import seq2seq_nb.train as T
T.setup_runtime(T.TrainConfig(threads=1, precision="auto"))   # auto: the bf16 probe, oneDNN's first use, runs too
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
case, seen = sys.argv[1], []
lstm, w = torch.nn.LSTM(64, 64, batch_first=True), torch.randn(256, 256, requires_grad=True)
for i in range(600):
    if case == "lstm-fp32":
        out = lstm(torch.randn(1 + i % 40, 2 + i // 40, 64, requires_grad=True))[0]
    else:
        with torch.autocast("cpu", dtype=torch.bfloat16): out = torch.nn.functional.linear(torch.randn(8 + i, 256), w)
    out.float().sum().backward()
    if i + 1 in (200, 600): seen.append(rss())
print(json.dumps(seen))
"""


@pytest.mark.parametrize("case", ["lstm-fp32", "linear-bf16"])
def test_memory_levels_off_over_hundreds_of_shapes_with_the_caps(case):
    if case == "linear-bf16":
        import torch
        from seq2seq_nb.core import bf16_is_faster
        if not bf16_is_faster(torch.device("cpu")): pytest.skip("no bf16 instructions here: bf16 products do not go through oneDNN's fast path")
    growth = lambda **env: (lambda a, b: b - a)(*json.loads(_python(SHAPES.replace("sys.argv[1]", repr(case)), **env)))
    default = growth(**dict.fromkeys(CACHES, "1024"))
    if default < 50: pytest.skip(f"oneDNN keeps no per-shape kernels for {case} on this machine (+{default:.0f} MB at 1,024)")
    capped = growth()
    assert capped < 25 and capped < default / 3, (case, capped, default)
