"""Render examples/notebook.ipynb's first output as a notebook shows it: docs/notebook.png.

Executes the notebook headless (nbclient, this interpreter as the kernel), wraps the first
code cell and its HTML output (the Explanation's summary, overlay and curves) in a page styled
like a notebook cell, and screenshots it with headless Chromium.

    python tools/notebook_picture.py [docs/notebook.png]
"""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PAGE = """<html><head><meta charset="utf-8"><style>
body {{ font-family: 'Segoe UI', Helvetica, Arial, sans-serif; margin: 16px; width: 1040px; }}
.in, .out {{ display: flex; }} .out {{ margin-top: 8px; }}
.prompt {{ color: #303f9f; font-family: monospace; width: 70px; padding-top: 8px; }}
.oprompt {{ color: #d84315; font-family: monospace; width: 70px; }}
pre {{ background: #f5f5f5; border: 1px solid #e0e0e0; padding: 8px; margin: 0; flex: 1;
       font-size: 13px; }}
.body {{ flex: 1; font-size: 13px; }} th, td {{ padding: 2px 8px; }}
</style></head><body>
<div class="in"><div class="prompt">In&nbsp;[1]:</div><pre>{code}</pre></div>
<div class="out"><div class="oprompt">Out[1]:</div><div class="body">{output}</div></div>
</body></html>"""


def main(out: Path) -> None:
    import nbclient
    import nbformat

    work = Path(tempfile.mkdtemp(prefix="mmattr-nb-"))
    spec = work / "kernels" / "mmattr-picture"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "mmattr", "language": "python"}))
    os.environ["JUPYTER_PATH"] = str(work)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    nb = nbformat.read(ROOT / "examples" / "notebook.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="mmattr-picture",
                            resources={"metadata": {"path": str(work)}}).execute()
    cell = next(c for c in nb.cells if c.cell_type == "code")
    output = next(o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {}))
    page = work / "cell.html"
    page.write_text(PAGE.format(code=html.escape(cell.source), output=output), encoding="utf-8")
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which(
        "google-chrome")
    if browser is None:
        sys.exit("needs Chromium (apt-get install chromium)")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1080,1210", f"--screenshot={out.resolve()}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "notebook.png")
