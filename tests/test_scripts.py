"""The test command's own set-up steps behave on a user's machine, not only in CI."""
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bin_without_chromium_or_apt(tmp_path) -> str:
    """A PATH folder with what the script needs (bash, id) and neither chromium nor apt-get."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("bash", "id"):
        os.symlink(shutil.which(tool), folder / tool)
    return str(folder)


def test_chromium_step_says_why_and_lets_the_suite_run_where_it_cannot_install(tmp_path):
    p = subprocess.run(["bash", "scripts/ensure-chromium.sh"], cwd=REPO, capture_output=True, text=True,
                       env={"PATH": _bin_without_chromium_or_apt(tmp_path)}, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "will be skipped" in p.stderr and "apt-get install -y chromium" in p.stderr


def test_without_chromium_the_browser_tests_are_skipped_with_the_reason_in_the_summary(tmp_path):
    env = dict(os.environ, PATH=_bin_without_chromium_or_apt(tmp_path))
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                        "tests/report/test_html.py"], cwd=REPO, capture_output=True, text=True, env=env,
                       timeout=600)
    assert p.returncode == 0, p.stdout[-3000:]
    skipped = [line for line in p.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) >= 1 and all("chromium is not installed" in line for line in skipped), p.stdout[-3000:]
    assert "apt-get install -y chromium" in p.stdout
    assert "passed" in p.stdout.splitlines()[-1]     # the browser-free checks still ran
