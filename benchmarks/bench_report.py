"""How long the zoo-wide report takes to build, write and render in a real browser, at 150+ models.

    .venv/bin/python benchmarks/bench_report.py [--models N]

The input is tests/report/zoo_inputs.py's: the real zoo when traces/ holds N or more traces, else the
committed traces under distinct names, with estimate-backend results. Prints, measured in one run:
build_report and write_report seconds; then in headless chromium (1280x900) the milliseconds from
navigation to the page parsed and laid out (tests/report/layout_check.js), and the whole browser
run (start-up included), against the issue's target of 10 s; and the same for the committed traces'
own report, as a ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "report"))

from replay.report.build import build_report, write_report  # noqa: E402
from zoo_inputs import estimate_results, zoo_traces  # noqa: E402

CHECK_JS = os.path.join(ROOT, "tests", "report", "layout_check.js")
TARGET_S = 10.0


def in_browser(html_path: str, work: str) -> tuple[dict, float]:
    """(the layout check's measures, seconds the whole chromium run took)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        sys.exit("bench_report: chromium is not installed (apt-get install -y chromium)")
    checked = os.path.join(work, "checked.html")
    with open(html_path) as f, open(checked, "w") as g:
        g.write(f.read().replace("</body>", f"<script>{open(CHECK_JS).read()}</script></body>"))
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1280,900",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={os.path.join(work, 'profile')}", "--dump-dom", f"file://{checked}"]
    t0 = time.perf_counter()
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout
    wall = time.perf_counter() - t0
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', dom)
    return (json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")) if found else {}), wall


def measure(traces, label: str, work: str) -> float:
    """Build, write and render one report; prints its line and returns the browser's rendered seconds."""
    header, results = estimate_results(traces)
    t0 = time.perf_counter()
    rep = build_report(traces, header, results)
    t1 = time.perf_counter()
    html = write_report(rep, os.path.join(work, label))["html"]
    t2 = time.perf_counter()
    got, wall = in_browser(html, work)
    rendered = got.get("rendered_ms", float("nan")) / 1000
    print(f"{label}: {len(rep.models)} models, {len(rep.ops)} ops, {os.path.getsize(html) / 1e6:.1f} MB html; "
          f"build {t1 - t0:.2f} s, write {t2 - t1:.2f} s; chromium: parsed {got.get('parsed_ms', 0) / 1000:.2f} s, "
          f"laid out {rendered:.2f} s after navigation, whole run {wall:.1f} s; overflowing "
          f"{len(got.get('overflowing', []))}, models without a link {len(got.get('unlinked', []))}")
    return rendered


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=150)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="optrace-bench-report-")
    try:
        traces, real = zoo_traces(args.models)
        committed, _ = zoo_traces(0)
        small = measure(committed, "committed traces", work)
        big = measure(traces, "the zoo" if real else f"{len(traces)} models (committed traces, renamed)", work)
        verdict = "met" if big <= TARGET_S else "NOT met"
        print(f"zoo report laid out in {big:.2f} s (target {TARGET_S:.0f} s: {verdict}); "
              f"{big / small:.1f}x the committed traces' report")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
