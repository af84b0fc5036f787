"""Export: requests.csv, one flat row per RequestRecord (records → CSV for spreadsheets and pandas).

Every RequestRecord field, with itl_s as a JSON list, plus derived columns: tpot_s, itl_count,
itl_mean_s and phase (warmup / scored / cooldown).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

from harness.records import RequestRecord
from harness.scoring.metrics import Window, phase_of

DERIVED = ("tpot_s", "itl_count", "itl_mean_s", "phase")


def csv_columns() -> list[str]:
    return [f.name for f in dataclasses.fields(RequestRecord)] + list(DERIVED)


def write_requests_csv(path: Path, records: list[RequestRecord], window: Window) -> int:
    """Write requests.csv; returns the number of rows."""
    names = [f.name for f in dataclasses.fields(RequestRecord)]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(csv_columns())
        for r in records:
            row = []
            for k in names:
                v = getattr(r, k)
                row.append(json.dumps(v) if k == "itl_s" else "" if v is None else v)
            gaps = r.itl_s or []
            row += ["" if r.tpot_s is None else r.tpot_s, len(gaps),
                    sum(gaps) / len(gaps) if gaps else "", phase_of(r, window)]
            w.writerow(row)
    return len(records)
