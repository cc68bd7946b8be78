"""The report's view of remedies: what ``replay.studies.remedies`` stored in ``extra["remedy"]``."""
from __future__ import annotations

from typing import Iterable

from replay.report.data import RemedyRow
from replay.results import ReplayResult
from replay.studies.remedies import NONE


def remedy_text(r: ReplayResult | None) -> str:
    """The remedy column: the cheapest working configuration, "none", or "" when none was tried."""
    if r is None or not isinstance(r.extra.get("remedy"), dict):
        return ""
    rem = r.extra["remedy"]
    need = rem.get("bytes_needed")
    return rem.get("remedy", "") + (f" ({need:,} B)" if need else "")


def remedy_rows(results: Iterable[ReplayResult], shapes: dict[str, str]) -> list[RemedyRow]:
    """RemedyRow per result that has a remedy, in signature id order."""
    rows = []
    for r in sorted(results, key=lambda r: r.signature_id):
        rem = r.extra.get("remedy") if isinstance(r.extra, dict) else None
        if isinstance(rem, dict):
            rows.append(RemedyRow(signature_id=r.signature_id, op=r.op, input_shapes=shapes.get(r.signature_id, ""),
                                  status=r.status, remedy=rem.get("remedy", NONE),
                                  bytes_needed=rem.get("bytes_needed"),
                                  tried=[f"{n}: {s}" for n, s in rem.get("tried", [])]))
    return rows
