import pytest

from capture.schema import read_trace
from report_inputs import TRACE_PATHS


@pytest.fixture(scope="session")
def traces():
    assert TRACE_PATHS, "no committed traces under traces/"
    return [read_trace(p) for p in TRACE_PATHS]
