"""`snakemake --report`: one self-contained HTML page with the artifacts, grouped by the paper's
sections, opened in headless Chromium. Runs where Chromium is installed (Debian: apt install
chromium; CI installs it when it can), otherwise skipped saying why; the report's refusal
without finished runs is tested everywhere."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess

import pytest

from test_workflow import SNAKEMAKE, fresh_clone

SMOKE = ["--configfile", "config/smoke.yaml"]


def test_report_without_runs_names_the_target_to_run_first(tmp_path):
    clone = fresh_clone(tmp_path)
    res = subprocess.run([*SNAKEMAKE, "--report", "report.html", *SMOKE], cwd=clone,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "no finished runs of the smoke profile" in res.stdout + res.stderr
    assert "snakemake --cores 1 all" in res.stdout + res.stderr
    assert not (clone / "report.html").exists()


CHROMIUM = next((c for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)),
                None)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt install chromium)")
def test_report_renders_in_chromium(tmp_path):
    """Figure 4 and Table 5 of the smoke profile (4 tiny runs), then the report: it embeds the
    figure, names the paper's sections, and Chromium renders a page that is not blank."""
    clone = fresh_clone(tmp_path / "clone")
    run = subprocess.run([*SNAKEMAKE, "--cores", "1", "fig4", "table5", *SMOKE], cwd=clone,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rep = subprocess.run([*SNAKEMAKE, "--report", "report.html", "fig4", "table5", *SMOKE],
                         cwd=clone, capture_output=True, text=True, timeout=600)
    assert rep.returncode == 0, rep.stderr[-3000:]
    html = (clone / "report.html").read_text()
    assert "1. Experiments (Sec. 5" in html and "2. Data and hyperparameters" in html
    assert "smoke profile" in html  # the provenance label, computed from the records
    fig = (clone / "figures/smoke/fig4_sigma_max.png").read_bytes()
    assert base64.b64encode(fig).decode()[:2000] in html  # the figure itself is embedded

    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--window-size=1280,900", "--virtual-time-budget=10000", f"--screenshot={shot}",
           (clone / "report.html").as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 5000
    import matplotlib.image as mpimg
    img = mpimg.imread(shot)[..., :3]
    assert img.shape[0] >= 800 and img.shape[1] >= 1200
    # not blank: a real page has text and colour, far from one flat colour
    assert img.std() > 0.05 and (abs(img - img.mean(axis=(0, 1))).sum(axis=2) > 0.2).mean() > 0.01
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          "--virtual-time-budget=10000", "--dump-dom",
                          (clone / "report.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert re.search(r"Experiments|Snakemake", dom), dom[:2000]  # the app rendered
