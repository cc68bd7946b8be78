"""The results journal as a user meets it after a fault: a torn last line, two runs on one file, a
full or read-only results folder. Estimate backend (in-process, fast); CLI runs in subprocesses.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from replay import lock
from replay.results import SPLIT_WRITE_ENV, Journal, ReplayResult, ResultsError, read_results, write_header

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPLAY = os.path.join(os.path.dirname(sys.executable), "replay")
TRACE = os.path.join(REPO, "traces", "mobilenet_v3_large.msgpack")
NAME = "estimate_n150_bfloat16_dram.jsonl"


def replay(*args, env=None, timeout=120):
    return subprocess.run([REPLAY, TRACE, "--backend", "estimate", "--no-report", "--no-remedies", *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)


def signature_counts(path) -> dict[str, int]:
    """How often each signature has a line in the journal (the header aside)."""
    counts: dict[str, int] = {}
    with open(path) as f:
        for line in f.read().splitlines()[1:]:
            sid = json.loads(line)["signature_id"]
            counts[sid] = counts.get(sid, 0) + 1
    return counts


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """{signature_id: status} of an uninterrupted run."""
    out = tmp_path_factory.mktemp("full")
    p = replay("--out", str(out))
    assert p.returncode == 0, p.stderr
    return {r.signature_id: r.status for r in read_results(str(out / NAME))[1]}


def _result(i: int) -> ReplayResult:
    return ReplayResult(signature_id=f"{i:016x}", op="aten.relu.default", status="pass", backend="estimate",
                        device="n150", mock=False, reason="x" * 200)


def _journal(path, n: int) -> None:
    write_header(str(path), {"note": "test"})
    j = Journal(str(path))
    for i in range(n):
        j.append(_result(i))
    j.close()


def _cut_inside_record(path, records: int, extra_bytes: int) -> bytes:
    """Leave the header, `records` whole records and the first extra_bytes of the next; returns that cut."""
    data = open(path, "rb").read()
    lines = data.split(b"\n")
    keep = b"".join(line + b"\n" for line in lines[:1 + records]) + lines[1 + records][:extra_bytes]
    open(path, "wb").write(keep)
    return lines[1 + records][:extra_bytes]


# ---------------------------------------------------------------------------------------------
# A torn last line

def test_a_torn_501st_record_is_cut_on_open_and_appending_after_it_reads_back(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    _journal(path, 510)
    _cut_inside_record(path, 500, 150)
    header, results = read_results(str(path))
    assert len(results) == 500
    err = capsys.readouterr().err
    assert f"cut an incomplete last line (150 bytes, signature {500:016x}, aten.relu.default)" in err
    assert open(path, "rb").read().endswith(b"\n")
    j = Journal(str(path))
    j.append(_result(500))
    j.close()
    assert [r.signature_id for r in read_results(str(path))[1]] == [f"{i:016x}" for i in range(501)]


def test_a_journal_opened_without_reading_first_still_cuts_the_torn_tail(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    _journal(path, 5)
    _cut_inside_record(path, 3, 20)
    j = Journal(str(path))
    j.append(_result(3))
    j.close()
    assert "cut an incomplete last line (20 bytes, signature unreadable)" in capsys.readouterr().err
    assert len(read_results(str(path))[1]) == 4


def test_a_bad_line_before_the_last_still_stops_with_its_line_number(tmp_path):
    path = tmp_path / "r.jsonl"
    _journal(path, 5)
    lines = open(path).read().split("\n")
    lines[3] = lines[3][:40]
    open(path, "w").write("\n".join(lines))
    before = open(path).read()
    with pytest.raises(ResultsError, match=r"r\.jsonl:4: not a results line \(not JSON\)"):
        read_results(str(path))
    assert open(path).read() == before


def test_resume_after_a_cut_inside_a_record_replays_that_signature_once(tmp_path, uninterrupted):
    out = tmp_path / "r"
    assert replay("--out", str(out)).returncode == 0
    fragment = _cut_inside_record(out / NAME, 50, 150)
    sid = json.loads(fragment[:fragment.index(b', "op"')] + b"}")["signature_id"]
    p = replay("--out", str(out), "--resume")
    assert p.returncode == 0, p.stderr
    assert f"cut an incomplete last line (150 bytes, signature {sid}" in p.stderr
    assert set(signature_counts(out / NAME).values()) == {1}
    assert {r.signature_id: r.status for r in read_results(str(out / NAME))[1]} == uninterrupted
    again = replay("--out", str(out), "--resume")
    assert again.returncode == 0 and "cut" not in again.stderr, again.stderr


# ---------------------------------------------------------------------------------------------
# One writer per file

HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from replay.results import Journal
    j = Journal(sys.argv[1])
    print("holding", flush=True)
    time.sleep(60)
""")


def _hold(path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER.format(repo=REPO), str(path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_second_writer_is_refused_naming_the_first_and_a_killed_one_leaves_no_lock(tmp_path):
    path = tmp_path / "r.jsonl"
    _journal(path, 3)
    before = open(path, "rb").read()
    holder = _hold(path)
    try:
        for write in (lambda: Journal(str(path)), lambda: write_header(str(path), {"note": "other"})):
            with pytest.raises(ResultsError, match=f"another run \\(pid {holder.pid}\\) is writing"):
                write()
        assert open(path, "rb").read() == before
        assert len(read_results(str(path))[1]) == 3  # reading while another writes is fine
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    j = Journal(str(path))
    j.append(_result(3))
    j.close()
    assert len(read_results(str(path))[1]) == 4
    assert not os.path.exists(lock.lock_path(str(path)))


def test_writer_lock_refuses_another_process_and_is_reentrant_in_one(tmp_path):
    path = str(tmp_path / "headroom.json")
    with lock.writer_lock(path, "headroom file"):
        with lock.writer_lock(path, "headroom file"):
            assert lock.holds(path)
        code = (f"import sys; sys.path.insert(0, {REPO!r}); from replay import lock\n"
                f"try:\n    lock.acquire({path!r}, 'headroom file')\nexcept lock.FileBusy as e:\n"
                f"    print(e); sys.exit(2)\n")
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert p.returncode == 2 and f"(pid {os.getpid()}) is writing this headroom file" in p.stdout
    assert not lock.holds(path)


def test_a_file_replaced_by_another_run_since_it_was_read_is_not_appended_to(tmp_path):
    path = tmp_path / "r.jsonl"
    _journal(path, 2)
    read_results(str(path))
    shutil.copy(path, tmp_path / "other")
    os.replace(tmp_path / "other", path)  # another run's fresh start
    with pytest.raises(ResultsError, match="another run replaced this results file"):
        Journal(str(path))


def test_two_runs_on_one_results_file_the_second_is_refused_with_the_first_pid(tmp_path, uninterrupted):
    out = tmp_path / "r"
    env = {**os.environ, SPLIT_WRITE_ENV: "0.06"}  # ~6 s of journaling: time for the two other runs
    first = subprocess.Popen([REPLAY, TRACE, "--backend", "estimate", "--no-report", "--no-remedies",
                              "--out", str(out)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not (out / NAME).exists() or (out / NAME).stat().st_size < 5000:
        assert time.time() < deadline and first.poll() is None
        time.sleep(0.01)
    for args in ((), ("--resume",)):
        p = replay("--out", str(out), *args)
        assert p.returncode == 2, p.stderr
        assert p.stderr.count("\n") == 1 and f"(pid {first.pid}) is writing" in p.stderr, p.stderr
    while first.poll() is None:
        read_results(str(out / NAME))  # a reader meanwhile leaves the writer's tail alone
        time.sleep(0.005)
    assert first.returncode == 0, first.stderr.read()
    assert "cut" not in first.stderr.read()
    assert set(signature_counts(out / NAME).values()) == {1}
    assert {r.signature_id: r.status for r in read_results(str(out / NAME))[1]} == uninterrupted


# ---------------------------------------------------------------------------------------------
# A full or read-only results folder

def test_a_failed_write_takes_back_its_part_and_the_journal_goes_on(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    _journal(path, 2)
    before = open(path, "rb").read()
    j = Journal(str(path))
    real_write = os.write
    calls = []

    def full_disk(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, data[:100])  # a short write, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(ResultsError, match="No space left on device.*run again with --resume"):
        j.append(_result(2))
    assert open(path, "rb").read() == before
    monkeypatch.setattr(os, "write", real_write)
    j.append(_result(2))
    j.close()
    assert len(read_results(str(path))[1]) == 3


FULL_THEN_FREED = """
set -u
D=$1; OUT=$D/out; cd {repo}
mount -t tmpfs -o size=256k tmpfs $D || exit 77
head -c 200000 /dev/zero > $D/filler
run() {{ {replay} {trace} --backend estimate --no-report --no-remedies --out $OUT "$@" 2>&1; echo "rc=$?"; }}
echo "== full"; run
cp $OUT/{name} $2/after_full.jsonl
rm $D/filler
echo "== freed"; run --resume
cp $OUT/{name} $2/after_resume.jsonl
mount -o remount,ro $D
echo "== read-only, fresh"; run
echo "== read-only, resume"; run --resume
cmp $OUT/{name} $2/after_resume.jsonl && echo "untouched while read-only"
echo "== read-only, new folder"; run --out $D/new
"""


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare for a private tmpfs")
def test_a_full_then_freed_and_a_read_only_results_folder(tmp_path, uninterrupted):
    mnt, keep = tmp_path / "mnt", tmp_path / "keep"
    mnt.mkdir()
    keep.mkdir()
    script = FULL_THEN_FREED.format(repo=REPO, replay=REPLAY, trace=TRACE, name=NAME)
    p = subprocess.run(["unshare", "-m", "bash", "-c", script, "sh", str(mnt), str(keep)], capture_output=True,
                       text=True, timeout=120)
    if p.returncode == 77 or "unshare failed" in p.stderr or "Operation not permitted" in p.stderr:
        pytest.skip("no private mount namespace here")
    out = p.stdout
    sections = dict(s.split("\n", 1) for s in out.split("== ")[1:])
    for name in ("full", "read-only, fresh", "read-only, resume", "read-only, new folder"):
        text = sections[name]
        errors = [line for line in text.splitlines() if line.startswith("replay: ")]
        assert "rc=2" in text.splitlines() and len(errors) == 1, (name, out)
        assert "Traceback" not in text, (name, out)
    assert "No space left on device" in sections["full"]
    assert "Read-only file system" in sections["read-only, fresh"]
    after_full = keep / "after_full.jsonl"
    assert open(after_full, "rb").read().endswith(b"\n")
    assert 0 < len(read_results(str(after_full))[1]) < len(uninterrupted)
    assert sections["freed"].rstrip().endswith("rc=0"), out
    assert set(signature_counts(keep / "after_resume.jsonl").values()) == {1}
    assert {r.signature_id: r.status for r in read_results(str(keep / "after_resume.jsonl"))[1]} == uninterrupted
    assert "untouched while read-only" in out, out
