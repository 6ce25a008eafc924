#!/usr/bin/env python
"""Write README.md from nbs/index.ipynb (what `nbdev_readme` does, without needing Quarto).

Markdown cells are copied; code cells become ```python blocks followed by their text output;
cells marked `#| hide` are skipped, and nbdev directives (`#| ...`) are dropped from code.
Relative links in the notebook are written relative to `nbs/` (so that they work when the notebook is
opened in JupyterLab or on GitHub); in the README they are rewritten relative to the repository root
(`00_data.ipynb` -> `nbs/00_data.ipynb`, `../bench/x.json` -> `bench/x.json`).
"""
import json, posixpath, re, sys
from pathlib import Path

def rebase_links(md:str) -> str:
    "Rewrite relative Markdown link targets from nbs/ to the repository root."
    def fix(m):
        target = m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target): return m.group(0)   # URL, anchor or absolute path
        path, _, frag = target.partition("#")
        new = posixpath.normpath(posixpath.join("nbs", path)) + (f"#{frag}" if frag else "")
        return f"{m.group(1)}({new})"
    return re.sub(r"(\[[^\]]*\])\(([^)\s]+)\)", fix, md)

root = Path(__file__).resolve().parents[1]
nb = json.loads((root/"nbs"/"index.ipynb").read_text(encoding="utf-8"))
parts = ["<!-- Generated from nbs/index.ipynb by scripts/make_readme.py; edit the notebook, not this file. -->"]
for cell in nb["cells"]:
    src = "".join(cell["source"])
    if cell["cell_type"] == "markdown":
        parts.append(rebase_links(src.strip())); continue
    lines = src.splitlines()
    if any(l.strip().replace(" ", "") in ("#|hide", "#|include:false") for l in lines): continue
    code = "\n".join(l for l in lines if not l.lstrip().startswith("#|")).strip()
    if code: parts.append(f"```python\n{code}\n```")
    out = "".join("".join(o.get("text", "")) if o["output_type"] == "stream" else "".join(o.get("data", {}).get("text/plain", ""))
                  for o in cell.get("outputs", []))
    if out.strip(): parts.append("```\n" + out.rstrip() + "\n```")
text = "\n\n".join(parts) + "\n"
dest = root/"README.md"
if not dest.exists() or dest.read_text(encoding="utf-8") != text:
    dest.write_text(text, encoding="utf-8")
    print(f"wrote {dest}")
