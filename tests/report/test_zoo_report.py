"""The report over a whole zoo (150+ models): grouped by task and family, summaries per group, the fix
order by models unblocked, counts that reconcile, and a page that stays usable in a real browser.

Uses the real zoo when traces/ holds 150+ traces, else the committed traces under distinct names
(tests/report/zoo_inputs.py); estimate-backend results. The browser test needs chromium (see test_html.py).
"""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from replay.report.build import build_report, write_report
from replay.report.data import MatrixCell
from replay.report.groups import fix_order

from test_html import chromium
from zoo_inputs import ZOO_SIZE, estimate_results, zoo_traces

CHECK_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "layout_check.js")


@pytest.fixture(scope="module")
def zoo():
    traces, _real = zoo_traces()
    header, results = estimate_results(traces)
    return traces, build_report(traces, header, results)


def test_zoo_report_counts_reconcile_per_model_task_family_and_fix_order(zoo):
    traces, rep = zoo
    assert len(rep.models) == len(traces) >= ZOO_SIZE
    calls = {t.model_name: len(t.calls) for t in traces}
    assert {m.model: sum(m.by_status.values()) for m in rep.models} == calls
    for kind in ("task", "family"):
        groups = [g for g in rep.groups if g.kind == kind]
        assert sorted(m for g in groups for m in g.models) == sorted(calls)     # each model in one group
        assert sum(g.calls for g in groups) == sum(calls.values())
        assert sum(g.blocked_calls for g in groups) == sum(m.blocked_calls for m in rep.models)
    tasks = {g.name for g in rep.groups if g.kind == "task"}
    assert {"classification", "detection"} <= tasks
    failing = {m for cells in rep.matrix.values() for m, c in cells.items() if c.status not in ("pass", "skipped",
                                                                                                   "folded")}
    last = rep.fix_order[-1]
    assert last.still_blocked == 0 and last.unblocked_total == len(failing)
    assert sorted(m for s in rep.fix_order for m in s.unblocks) == sorted(failing)   # each unblocked once


def test_fix_order_first_fixes_the_op_that_alone_unblocks_most_models():
    def cell(status):
        return MatrixCell(calls=1, status=status, statuses={status: 1})
    # a and b fail only in conv; c fails in conv and softmax; d only in softmax; e only in gather
    matrix = {"conv": {"a": cell("oom_dram"), "b": cell("oom_l1"), "c": cell("unsupported")},
              "softmax": {"c": cell("oom_dram"), "d": cell("oom_dram"), "e": cell("pass")},
              "gather": {"e": cell("unsupported"), "a": cell("pass")}}
    steps = fix_order(matrix, ["a", "b", "c", "d", "e"])
    assert [(s.op, s.unblocks, s.unblocked_total, s.still_blocked) for s in steps] == [
        ("conv", ["a", "b"], 2, 3), ("softmax", ["c", "d"], 4, 1), ("gather", ["e"], 5, 0)]
    assert steps[0].models_blocked == 3


def test_zoo_report_groups_the_matrix_and_indexes_every_model_by_task_and_family(zoo, tmp_path):
    traces, rep = zoo
    paths = write_report(rep, str(tmp_path))
    md = open(paths["markdown"]).read()
    assert "## Per task" in md and "## Per family" in md and "## Fix order: by models unblocked" in md
    page = open(paths["html"]).read()
    index = page[page.index('<nav class="models"'):page.index("</nav>", page.index('<nav class="models"'))]
    assert all(f'href="#model-{i}"' in index for i in range(len(rep.models)))
    assert "<b>classification</b>" in index and "<b>detection</b>" in index
    matrix = page[page.index('<section id="matrix"'):page.index('<section id="shared"')]
    assert '<div class="scroll"><table class="matrix">' in matrix
    assert len(re.findall(r'<th class="m"><a href="#model-\d+">', matrix)) == len(rep.models)
    assert "Fix order: by models unblocked" in page and "By task and by family" in page


def test_zoo_report_in_chromium_nothing_overflows_and_every_model_is_one_click_away(zoo, tmp_path):
    _, rep = zoo
    path = write_report(rep, str(tmp_path / "reports"))["html"]
    checked = tmp_path / "checked.html"
    checked.write_text(open(path).read().replace("</body>", f"<script>{open(CHECK_JS).read()}</script></body>"))
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1280,900",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", f"file://{checked}"]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=180).stdout
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', dom)
    assert found, "the layout check did not run in the page"
    got = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert got["page_scroll_width"] <= got["viewport"], "the page scrolls sideways"
    assert got["overflowing"] == [], got["overflowing"]
    assert got["models"] == len(rep.models) and got["unlinked"] == []
    assert got["checked"] > 1000   # the check saw the page, not an empty one


def test_the_layout_check_sees_a_table_wider_than_the_window(tmp_path):
    page = tmp_path / "wide.html"
    page.write_text("<!DOCTYPE html><html><body><p>x</p><table style='width:5000px'><tr><td>wide</td></tr></table>"
                    f"<script>{open(CHECK_JS).read()}</script></body></html>")
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1280,900",
           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", f"file://{page}"]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    got = json.loads(re.search(r'<pre id="layout-check">(.*?)</pre>', dom).group(1).replace("&quot;", '"'))
    assert got["overflowing"] and got["page_scroll_width"] > got["viewport"]


def test_the_terminal_shows_a_zoo_one_line_per_model(zoo):
    from replay.report.build import render_terminal
    _, rep = zoo
    lines = render_terminal(rep).splitlines()
    assert len(lines) < len(rep.models) + 40 and lines[2].startswith(f"traces: {len(rep.models)} ")
    assert sum(line.startswith(f"{m.model} (") for m in rep.models for line in lines) >= len(rep.models)
    assert any(line.startswith("task classification: ") for line in lines)
