"""Decide: the commands that answer "which GPU and quantization meet our SLA at the lowest cost,
and how much traffic can one replica take?" — `run_matrix`, `run_sweep`, `compare_runs`.

Built on saved run folders (records seam) and summary.json (scoring seam); see docs/decisions.md.
"""

from harness.decide.compare import CompareOutcome, compare_runs
from harness.decide.matrix import MatrixOutcome, run_matrix
from harness.decide.sweep import SweepOutcome, run_sweep, search

__all__ = ["run_matrix", "MatrixOutcome", "run_sweep", "SweepOutcome", "search", "compare_runs", "CompareOutcome"]
