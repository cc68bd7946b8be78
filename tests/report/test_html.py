"""The HTML report opens in a real headless browser: charts drawn, no script errors, names inert.

Needs Debian's chromium (`apt-get install -y chromium`; scripts/test.sh installs it where it can). Without
it the browser tests are skipped with that reason, printed in pytest's summary (`-rs`).
"""
from __future__ import annotations

import copy
import re
import shutil
import subprocess

import pytest

from replay.report.build import build_report, write_report
from replay.report.html import render_html

from report_inputs import synthetic_results

HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="console.error(\'xss\')">'
APT_LINE = "apt-get install -y chromium"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip(f"chromium is not installed, so the report was not opened in a browser; install it: {APT_LINE}")
    return path


def open_in_browser(html_path: str, tmp_path) -> tuple[str, str]:
    """(the DOM after load, chromium's log with console messages)."""
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
           "--dump-dom", f"file://{html_path}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout, p.stderr


def console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if "CONSOLE" in line and re.search(r"error|uncaught|xss|pwned", line, re.IGNORECASE)]


@pytest.fixture(scope="module")
def hostile_report(traces):
    trace = copy.deepcopy(traces[-1])
    trace.header["model"]["name"] = HOSTILE
    header, results = synthetic_results([trace, traces[0]], leave_out_every=9)
    for r in results:
        if r.status == "ttnn_error":
            r.reason = "TT_THROW " + HOSTILE
    return build_report([trace, traces[0]], header, results)


def test_console_errors_are_detected_at_all(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>throw new Error('boom')</script></body></html>")
    _, log = open_in_browser(str(page), tmp_path)
    assert console_errors(log), "the browser log shows no console messages; the checks below would be blind"


def test_report_opens_in_chromium_with_charts_and_no_script_errors(hostile_report, tmp_path):
    path = write_report(hostile_report, str(tmp_path / "reports"))["html"]
    dom, log = open_in_browser(path, tmp_path)
    assert dom.count("<svg") >= 2, "status and bytes charts missing"
    assert "<rect" in dom
    assert not console_errors(log), console_errors(log)
    for m in hostile_report.models:
        assert f'id="model-{hostile_report.models.index(m)}"' in dom


def test_a_model_named_script_shows_as_text(hostile_report, tmp_path):
    path = write_report(hostile_report, str(tmp_path / "reports"))["html"]
    dom, log = open_in_browser(path, tmp_path)
    assert "<script" not in dom.lower() and "<img" not in dom.lower()
    assert "&lt;script&gt;document.title" in dom
    assert "<title>pwned</title>" not in dom
    assert not console_errors(log)


def test_report_is_self_contained(hostile_report):
    page = render_html(hostile_report)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    assert "<script" not in page.replace("&lt;script", "")
