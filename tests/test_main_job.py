"""The README's main-job command, end to end: trace, replay on the mock device, report."""
import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_readme_main_job_traces_replays_and_ends_with_the_report_path():
    p = subprocess.run(["bash", "scripts/main.sh", "resnet50"], cwd=REPO, capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    last = p.stdout.strip().splitlines()[-1]
    assert last == "report: reports/report.html"
    assert os.path.exists(os.path.join(REPO, "reports", "report.html"))
    assert os.path.exists(os.path.join(REPO, "results", "traces", "resnet50.msgpack"))
    assert "mock device: ttnn's own allocator and op code, no arithmetic" in p.stdout
    assert "resnet50: 229 calls" in p.stdout
