"""The recorded validation baseline: which shipped points sit inside their bands, and the quick subset.

`baseline.json` holds `inside` (point ids inside their bands when it was written) and `quick` (ids
cheap enough to simulate in a unit test: a few seconds together). A unit test re-runs the quick
points and fails when one recorded inside leaves its band. Refresh it after a model change with
`python -m harness.sim.validation.baseline` (runs every point, about a minute).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .points import load_points
from .runner import format_table, run_point

BASELINE = Path(__file__).with_name("baseline.json")
QUICK_MAX_S = 0.35  # a point whose simulation takes longer on this machine stays out of the quick set


def load_baseline(path: Path = BASELINE) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def write_baseline(path: Path = BASELINE) -> str:
    """Run every shipped point, record the inside ones and the quick ones; returns the table."""
    results, quick = [], []
    for p in load_points().points:
        t0 = time.perf_counter()
        r = run_point(p)
        if time.perf_counter() - t0 <= QUICK_MAX_S:
            quick.append(p.id)
        results.append(r)
    doc = {"inside": [r.point.id for r in results if r.inside], "quick": quick}
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return format_table(results)


if __name__ == "__main__":
    print(write_baseline(Path(sys.argv[1]) if len(sys.argv) > 1 else BASELINE))
