"""Default output folders: `reports/<stem>-<UTC stamp>/`, created atomically so two commands started in
the same second never share (or overwrite) a folder; the second gets `-2`, the third `-3`, ...
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

MAX_SUFFIX = 10_000  # beyond this many folders in one second something is looping: say so


def utc_stamp(now: datetime | None = None) -> str:
    """Second-resolution UTC stamp used in every default folder name (sorts by time)."""
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def new_out_dir(root: Path, stem: str, now: datetime | None = None) -> Path:
    """Create and return a fresh folder `root/stem-STAMP[-N]`; never one that already existed."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{stem}-{utc_stamp(now)}"
    for n in range(1, MAX_SUFFIX + 1):
        path = root / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()  # atomic: exactly one process wins each name
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{root}: {MAX_SUFFIX} folders named {base}-* already exist: pass --out DIR")
