#!/usr/bin/env python
"""Write README.md from nbs/index.ipynb (what `nbdev_readme` does, without needing Quarto).

Markdown cells are copied; code cells become ```python blocks followed by their text output;
cells marked `#| hide` are skipped, and nbdev directives (`#| ...`) are dropped from code.
"""
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
nb = json.loads((root/"nbs"/"index.ipynb").read_text(encoding="utf-8"))
parts = ["<!-- Generated from nbs/index.ipynb by scripts/make_readme.py; edit the notebook, not this file. -->"]
for cell in nb["cells"]:
    src = "".join(cell["source"])
    if cell["cell_type"] == "markdown":
        parts.append(src.strip()); continue
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
