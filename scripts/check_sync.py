#!/usr/bin/env python
"""Fail if nbdev_export, nbdev_clean or the README step would change any file.

The notebooks in nbs/ are the source of truth: the package in seq2seq_nb/ is generated from them by
nbdev_export, they are committed cleaned by nbdev_clean, and README.md is generated from
nbs/index.ipynb by scripts/make_readme.py. This script hashes those files, runs the three tools, and
reports every file whose content changed (a committed file that was not regenerated, or a new one).
"""
import hashlib, subprocess, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
watched = lambda: {p: hashlib.sha256(p.read_bytes()).hexdigest()
                   for d in ("nbs", "seq2seq_nb") for p in sorted((root/d).rglob("*"))
                   if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts} | \
                  {root/"README.md": hashlib.sha256((root/"README.md").read_bytes()).hexdigest() if (root/"README.md").exists() else None}
before = watched()
for cmd in (["nbdev_export"], ["nbdev_clean"], [sys.executable, "scripts/make_readme.py"]):
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"check_sync: {' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
after = watched()
changed = sorted(str(p.relative_to(root)) for p in before.keys() | after.keys() if before.get(p) != after.get(p))
if changed:
    print("check_sync: these files were out of date with the notebooks (now regenerated; review and commit them):")
    for c in changed: print("  ", c)
    sys.exit(1)
print("check_sync: package, cleaned notebooks and README are in sync with nbs/")
