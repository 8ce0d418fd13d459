"""`python -m cvexp.study` as a user runs it: a two-step study (conf/study/smoke.yaml: the theory tables
and one smoke training run) from scratch, then again with both steps reused and nothing trained;
a failing step in the report and the exit code; the report rendered in headless Chromium."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import run_cli

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "chromium-headless-shell")


def check_html_refs(page: Path, images: bool = True) -> None:
    """Every <img src> is a data URI or a file beside the page, every <a href> an anchor or a file
    (tests/unit/test_study.py checks the same in more detail)."""
    found: list[tuple[str, str]] = []
    ids: set[str] = set()

    class Refs(HTMLParser):
        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            ids.add(a.get("id", ""))
            if tag in ("img", "a"):
                found.append((tag, a.get("src" if tag == "img" else "href", "")))

    Refs().feed(page.read_text())
    assert any(tag == "img" for tag, _ in found) == images
    for tag, ref in found:
        if ref.startswith("data:image/png;base64,") or (ref.startswith("#") and ref[1:] in ids):
            continue
        assert "://" not in ref and (page.parent / ref).is_file(), (tag, ref)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    """The smoke study run once from scratch: (study dir, the finished process)."""
    study = tmp_path_factory.mktemp("study") / "smoke"
    r = run_cli(["-m", "cvexp.study", "study=smoke", f"study.dir={study}"], env={"OMP_NUM_THREADS": "1"})
    return study, r


def test_a_study_runs_from_scratch_then_reuses_every_step(smoke_study):
    study, r = smoke_study
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    out = r.stdout
    assert "step 1/2 theory [theory]: not run yet" in out and "step 2/2 train [train]: not run yet" in out
    for f in ("report.md", "report.html", "study.json", "theory/theory.json", "train/metrics.json",
              "train/status.json", "logs/train.log"):
        assert (study / f).is_file(), f
    md = (study / "report.md").read_text()
    metrics = json.loads((study / "train" / "metrics.json").read_text())
    assert f"| One smoke training run (debug=fast, demo data) | {metrics['test/acc']:.4f} |" in md
    check_html_refs(study / "report.html")

    # again: both steps reused; nothing ran (status.json, checkpoints and logs untouched), report rewritten
    kept = {p: (digest(p), p.stat().st_mtime_ns) for p in [study / "train" / "status.json",
                                                            study / "train" / "checkpoints" / "best.ckpt",
                                                            study / "theory" / "theory.json",
                                                            study / "logs" / "train.log"]}
    r2 = run_cli(["-m", "cvexp.study", "study=smoke", f"study.dir={study}"])
    assert r2.returncode == 0, (r2.stdout + r2.stderr)[-3000:]
    assert "step 1/2 theory [theory]: reused" in r2.stdout and "step 2/2 train [train]: reused" in r2.stdout
    assert {p: (digest(p), p.stat().st_mtime_ns) for p in kept} == kept
    assert (study / "logs" / "train.log").read_text().count("\n$ ") == 1  # one command ever ran for the step
    ledger = json.loads((study / "study.json").read_text())
    assert [s["reused"] for s in ledger["steps"]] == [True, True]
    assert f"{metrics['test/acc']:.4f}" in (study / "report.md").read_text()


def test_a_failed_step_is_in_the_report_and_the_exit_code(tmp_path):
    study = tmp_path / "failing"
    r = run_cli(["-m", "cvexp.study", "study=smoke", f"study.dir={study}", "study.steps.theory.enabled=false",
                 'study.steps.train.extra=["model.activation=bogus"]'])
    assert r.returncode == 1, (r.stdout + r.stderr)[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "train failed" in errors[0] and "bogus" in errors[0] and "report.html" in errors[0]
    assert "step 1/1 train: FAILED" in r.stdout
    md = (study / "report.md").read_text()
    assert "**train** failed:" in md and "bogus" in md and "[logs/train.log](logs/train.log)" in md
    assert "Not available:** step train failed" in md
    check_html_refs(study / "report.html", images=False)


def test_the_html_report_renders_in_headless_chromium(smoke_study, tmp_path):
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.skip(f"no Chromium/Chrome on PATH (looked for {', '.join(BROWSERS)}); install the distribution's "
                    "package (Debian/Ubuntu: apt-get install chromium) to run this check")
    study, r = smoke_study
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    shot = tmp_path / "report.png"
    cmd = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--window-size=1200,1600",
           f"--screenshot={shot}", (study / "report.html").resolve().as_uri()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), f"no screenshot ({p.returncode}): {p.stderr[-2000:]}"
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape[0] >= 800 and pixels.shape[1] >= 800
    assert pixels.std() > 10, "the screenshot is blank"  # text, tables and the confusion matrix
    assert (pixels < 128).mean() > 0.005  # dark pixels: text was drawn
