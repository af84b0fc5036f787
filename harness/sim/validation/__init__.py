"""Simulator validation: published measurements (points.yaml) run through the offline sim.

`slabench sim validate [--points FILE]` prints the table; `baseline.json` lists the points inside
their bands, which a unit test keeps inside.
"""

from .points import DEFAULT_POINTS, Point, PointSet, load_points
from .runner import Result, Summary, format_table, run_point, run_points, summarize

__all__ = ["DEFAULT_POINTS", "Point", "PointSet", "Result", "Summary", "format_table", "load_points", "run_point",
           "run_points", "summarize"]
