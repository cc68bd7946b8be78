"""failures.csv parses, keeps the original study's columns, and its numbers are the results' numbers."""
from __future__ import annotations

import csv

from replay.report.build import build_report, write_report
from replay.report.text import CSV_COLUMNS

from report_inputs import synthetic_results

STUDY_COLUMNS = ["Operator", "Input_Shape", "Total_Memory_B", "Total_Memory_MB", "Per_Bank_Memory_B",
                 "Per_Bank_Memory_KB", "Num_Banks"]


def test_failures_csv_parses_and_its_numbers_equal_the_results(traces, tmp_path):
    header, results = synthetic_results(traces, leave_out_every=13)
    report = build_report(traces, header, results)
    path = write_report(report, str(tmp_path))["csv"]
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0].keys()) == list(CSV_COLUMNS)
    assert set(STUDY_COLUMNS) <= set(rows[0])
    for col in ("Model", "Module_Path", "Calls", "Status", "Buffer_Type", "Device", "Mock_Or_Real",
                "Logical_Bytes", "Padded_Bytes"):
        assert col in rows[0]
    by_id = {r.signature_id: r for r in results}
    ooms = 0
    for row in rows:
        r = by_id.get(row["Signature_Id"])
        if r is None:
            assert row["Status"] == "not_run" and row["Total_Memory_B"] == ""
            continue
        assert row["Status"] == r.status and row["Operator"] == r.op and row["Device"] == r.device
        assert row["Mock_Or_Real"] == "mock"
        assert int(row["Logical_Bytes"]) == sum(t.logical_bytes for t in r.inputs + r.outputs)
        assert int(row["Padded_Bytes"]) == sum(t.padded_bytes for t in r.inputs + r.outputs)
        if r.oom:
            ooms += 1
            assert int(row["Total_Memory_B"]) == r.oom.requested_bytes
            assert abs(float(row["Total_Memory_MB"]) - r.oom.requested_bytes / 2**20) < 1e-3
            assert int(row["Per_Bank_Memory_B"]) == r.oom.per_bank_bytes
            assert abs(float(row["Per_Bank_Memory_KB"]) - r.oom.per_bank_bytes / 1024) < 1e-3
            assert int(row["Num_Banks"]) == r.oom.num_banks and row["Buffer_Type"] == r.oom.buffer_type
        else:
            assert row["Total_Memory_B"] == row["Num_Banks"] == ""
    assert ooms > 0
    for m in report.models:
        assert sum(int(row["Calls"]) for row in rows if row["Model"] == m.model) == m.blocked_calls
