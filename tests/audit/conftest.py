"""Shared by the audit tests: a small synthetic set, one audit of it, and a headless-Chromium
check of an HTML file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def render_in_chromium(html: Path, screenshot: Path | None = None, height: int = 2400) -> dict:
    """Open `html` in headless Chromium: returns the DOM after load, the console lines and
    whether a screenshot was written. Any console line counts (the report logs nothing)."""
    exe = chromium_binary()
    if exe is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium; "
                    "`make test` installs it)")
    base = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--disable-extensions", "--allow-file-access-from-files",
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]
    url = html.resolve().as_uri()
    run = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    console = [ln for ln in run.stderr.splitlines() if ":CONSOLE" in ln]
    shot = False
    if screenshot is not None:
        subprocess.run([*base, f"--window-size=1280,{height}", f"--screenshot={screenshot}", url],
                       capture_output=True, text=True, timeout=120)
        shot = screenshot.is_file() and screenshot.stat().st_size > 0
    body = re.search(r"<body([^>]*)>", run.stdout)
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1))) if body else {}
    return {"dom": run.stdout, "console": console, "attrs": attrs, "screenshot": shot}


@pytest.fixture(scope="session")
def shapes_set(tmp_path_factory) -> Path:
    """72 single-object 64 px scenes of the clean world, plus one corrupt image."""
    from mmattr.datasets.shapes import export_dataset

    root = tmp_path_factory.mktemp("shapes72")
    export_dataset(root, n_scenes=72, seed=5, size=64, n_objects=(1, 1))
    (root / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with open(root / "manifest.jsonl", "a") as f:
        f.write(json.dumps({"image": "images/broken.png", "label": "a red circle"}) + "\n")
    return root


@pytest.fixture(scope="session")
def audited(shapes_set, tmp_path_factory):
    """One audit of `shapes_set` with the demo model (2 images explained)."""
    import mmattr

    out = tmp_path_factory.mktemp("audit") / "out"
    cache = tmp_path_factory.mktemp("cache")
    from mmattr.audit import AuditSettings

    result = mmattr.audit(shapes_set, "demo", out=out, explain_budget=2,
                          settings=AuditSettings(cache_dir=str(cache), explain_regions=16))
    return result, cache


@pytest.fixture(scope="session")
def chromium():
    """`render_in_chromium` as a fixture (test modules here are not a package)."""
    return render_in_chromium
