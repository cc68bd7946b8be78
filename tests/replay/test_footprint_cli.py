"""`replay footprint` as a user runs it: the famous tile-padding case, JSON keys, bad shapes."""
import json
import os
import subprocess
import sys

import pytest

REPLAY = os.path.join(os.path.dirname(sys.executable), "replay")
KEYS = {"logical_bytes", "padded_shape", "page_bytes", "pages", "num_banks", "per_bank_bytes", "bank_bytes",
        "total_bytes", "fits", "blowup"}


def run(*args):
    return subprocess.run([REPLAY, "footprint", *args], capture_output=True, text=True, timeout=120)


def test_the_160_100_512_1_1_reshape_needs_16000_mib_and_does_not_fit_an_n150():
    p = run("--shape", "160,100,512,1,1", "--json")
    assert p.returncode == 0, p.stderr
    fp = json.loads(p.stdout)
    assert KEYS <= set(fp)
    assert fp["total_bytes"] == 16_777_216_000 and fp["per_bank_bytes"] == 1_398_102_016
    assert fp["num_banks"] == 12 and fp["fits"] is False
    assert fp["padded_shape"] == [160, 100, 512, 32, 32] and fp["blowup"] == pytest.approx(1024)
    assert json.loads(run("--shape", "160,100,512,1,1", "--json", "--device", "p150").stdout)["fits"] is True


def test_text_output_says_whether_it_fits():
    p = run("--shape", "160,100,512,1,1")
    assert p.returncode == 0 and "DOES NOT FIT" in p.stdout and "16,777,216,000" in p.stdout


@pytest.mark.parametrize("shape", ["", "1,-2", "1.5,2", "a,b"])
def test_bad_shapes_exit_2_with_one_line(shape):
    p = run("--shape", shape)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


@pytest.mark.parametrize("shape, bad", [("1,2,x", "'x'"), ("1,,2", "dimension 2 is empty"), ("1,2,", "dimension 3")])
def test_a_shape_with_a_non_integer_part_names_it_instead_of_dropping_it(shape, bad):
    p = run("--shape", shape)
    assert p.returncode == 2 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and bad in p.stderr and "--shape" in p.stderr
