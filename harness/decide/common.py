"""What matrix, sweep, capacity and compare share: the plan marker, the reports root, output-folder
choice (fresh `reports/<stem>-<UTC>/` or the one --resume continues) and reading one metric.

A leaf of harness/decide: it imports no sibling module, so no import circle can pass through it.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.config import ConfigError
from harness.outdirs import new_out_dir

PLAN_FILE = "plan.json"  # written first into every matrix / sweep folder: what --resume continues
REPORTS_ROOT = Path("reports")


def metric_value(summary: dict, metric: str, stat: str):
    """summary.json metrics[metric][stat], or None when it was not measured."""
    return ((summary.get("metrics") or {}).get(metric) or {}).get(stat)


def _stamp_key(name: str, prefix: str) -> tuple[str, int] | None:
    """(UTC stamp, suffix) of a folder `prefix-<stamp>[-N]`, None for another name (e.g. a longer prefix)."""
    m = re.fullmatch(re.escape(prefix) + r"-(\d{8}T\d{6}Z)(?:-(\d+))?", name)
    return (m.group(1), int(m.group(2) or 1)) if m else None


def latest_folder(prefix: str, root: Path = REPORTS_ROOT, marker: str = PLAN_FILE) -> Path | None:
    """The newest `root/prefix-<UTC time>[-N]/` holding `marker` (what --resume continues by default)."""
    found = [(key, p.parent) for p in Path(root).glob(f"{prefix}-*/{marker}")
             if (key := _stamp_key(p.parent.name, prefix)) is not None]
    return max(found)[1] if found else None


def choose_out(prefix: str, out_dir: Path | None, resume: bool, root: Path, what: str) -> Path:
    """The output folder: --out, or with --resume the newest earlier one, or a fresh
    `root/prefix-<UTC>[-N]/` (created here, never shared with a command started the same second)."""
    if resume:
        out = Path(out_dir) if out_dir else latest_folder(prefix, root)
        if out is None or not (out / PLAN_FILE).is_file():
            where = out or f"{root}/{prefix}-*"
            raise ConfigError(f"--resume: no earlier {what} folder at {where}: run without --resume "
                              "(or give its folder with --out)")
        return out
    if not out_dir:
        return new_out_dir(Path(root), prefix)
    out = Path(out_dir)
    check_empty_out(out, "or add --resume to continue it")
    return out


def check_empty_out(out: Path, hint: str = "") -> None:
    """ConfigError when --out names a file or a folder that already holds files."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file: give a folder path")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out {out} already holds files: choose a new folder" + (f", {hint}" if hint else ""))
