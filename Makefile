# Two commands do everything on a fresh machine (see README):
#   make train   set up .venv, train configs/base.yaml (the Transformer of 07, 60 min) on Multi30k EN->FR, translate the test set
#                with beam search; CONFIG=configs/bahdanau.yaml trains the series' RNN instead (into runs/bahdanau)
#   make test    set up .venv, check notebooks/package/README are in sync, run nbdev_test and pytest
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/base.yaml
RUN ?= runs/$(basename $(notdir $(CONFIG)))
TRAIN_ARGS ?=      # e.g. TRAIN_ARGS=--resume to go on with a stopped run, or --overwrite to start it again
# tests: one thread per process, one notebook worker (2 cores; oversubscription makes torch crawl)
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE

.PHONY: install train translate best test check nbtest pytest export clean readme bench lab

$(BIN)/.installed: setup.py settings.ini requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0   # the CPU build first; see README
	$(BIN)/python -m pip install -q -e ".[dev]" -c requirements/constraints.txt
	touch $@

install: $(BIN)/.installed

train: install
	$(BIN)/python scripts/train.py --config $(CONFIG) --run-dir $(RUN) $(TRAIN_ARGS)
	$(MAKE) --no-print-directory translate

# translate the test set with the best checkpoint and score it (cased, detokenized sacreBLEU and chrF)
translate: install
	$(BIN)/python scripts/translate.py --ckpt $(RUN)/best.pt --split test --beam 5 --out $(RUN)/test.hyp
	head -n 5 $(RUN)/test.hyp

# configs/best.yaml (08): train or resume it, keep its last 4 evaluations' weights, pick the length penalty (and beam size) on dev,
# score dev and test every way the grid does -> experiments/best/best.json (about 2.9 hours on 2 CPU cores with native bf16; rerun to resume)
best: install
	$(BIN)/python scripts/experiments.py --configs configs/best.yaml --runs-dir runs --results-dir experiments/best --alphas 0.2 0.6 1.0 1.4 1.8 2.2 --beams 5 8 12

test: install
	$(MAKE) --no-print-directory check nbtest pytest

check: install
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python scripts/check_sync.py

nbtest: install
	$(TEST_ENV) timeout 900 $(BIN)/nbdev_test --n_workers 1 --timing

pytest: install
	$(TEST_ENV) timeout 900 $(BIN)/python -m pytest -q -p no:cacheprovider tests

export: install
	$(BIN)/nbdev_export

clean: install
	$(BIN)/nbdev_clean

readme: install
	$(BIN)/python scripts/make_readme.py

bench: install
	$(BIN)/python scripts/bench.py

lab: install
	$(BIN)/jupyter lab nbs
