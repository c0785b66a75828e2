"""The report files of one eval (scripted model, two checkpoints, tools on and off): report.json holds
everything and parses, report.md has the tables and links the figures, and report.html renders in headless
Chromium with no console error and no network, every figure decoded to a non-empty picture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agentrl.evals.report import render_reports
from agentrl.evals.runner import run_eval
from tests.evals.conftest import script, small_spec

CHROMIUM = Path("/usr/bin/chromium")
FIGURES = ["passk-0", "tools-0", "training-0"]


@pytest.fixture(scope="module")
def evaluated(run_template, tmp_path_factory) -> tuple[Path, dict]:
    run = Path(shutil.copytree(run_template, tmp_path_factory.mktemp("runs") / "tiny"))
    with pytest.MonkeyPatch.context() as patch:
        script(patch)
        return run_eval(small_spec(run, tools=[True, False]))


def test_report_json_holds_everything(evaluated):
    out, report = evaluated
    stored = json.loads((out / "report.json").read_text())
    assert stored == report
    assert stored["spec"]["n"] == 3 and stored["versions"]["torch"]
    assert stored["tasks"][0]["config"]["rollout"]["max_new_tokens"] == 8
    assert [e["label"] for e in stored["tasks"][0]["entries"]] == [
        "tiny before RL",
        "tiny before RL (no tools)",
        "tiny after RL (step 3)",
        "tiny after RL (step 3) (no tools)",
    ]
    assert len(stored["tasks"][0]["entries"][0]["problems"]) == 4
    assert stored["training"][0]["metrics"][-1]["stage"] == "eval_after"


def test_report_md_has_the_tables_and_links_the_figures(evaluated):
    out, _ = evaluated
    markdown = (out / "report.md").read_text()
    assert "| tiny after RL (step 3) | yes | 0.667 [0.667, 0.667] | 1.000 [1.000, 1.000] |" in markdown
    for title in ("### pass^k", "### differences", "### behaviour", "### how trajectories ended", "## training"):
        assert title in markdown
    for name in FIGURES:
        assert f"![{name}](figures/{name}.png)" in markdown
        assert (out / "figures" / f"{name}.png").read_bytes().startswith(b"\x89PNG")


def test_reports_are_redrawn_from_report_json_alone(evaluated, tmp_path, fast_figures):
    out, _ = evaluated
    render_reports(json.loads((out / "report.json").read_text()), tmp_path)
    assert (tmp_path / "report.md").read_text() == (out / "report.md").read_text()
    assert sorted(p.stem for p in (tmp_path / "figures").iterdir()) == FIGURES


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_report_html_renders_in_chromium_with_its_figures(evaluated, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    out, _ = evaluated
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(FIGURES)
    errors, requests = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto((out / "report.html").as_uri(), wait_until="load")
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            images = page.eval_on_selector_all(
                "img", "imgs => imgs.map(i => ({alt: i.alt, done: i.complete, w: i.naturalWidth, h: i.naturalHeight}))"
            )
            tables = page.locator("table").count()
        finally:
            browser.close()

    assert sorted(i["alt"] for i in images) == FIGURES
    assert all(i["done"] and i["w"] > 300 and i["h"] > 200 for i in images), images
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert tables >= 7
    from PIL import Image

    with Image.open(shot) as picture:
        assert picture.height > 2000  # the whole page, not a blank viewport
        assert len(picture.convert("RGB").getcolors(maxcolors=1_000_000)) > 50  # plots and text, not blank
