"""docs/operations.md's Kubernetes sections stay runnable: every `slabench` command in their code blocks
parses with the real CLI parser, and the README links to the section that exists."""

from __future__ import annotations

import re
from pathlib import Path

from harness.cli import _parser

from tests.unit.deploy.checks import slabench_commands

ROOT = Path(__file__).resolve().parents[3]
OPS = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")


def section(title_start: str) -> str:
    start = OPS.index(f"\n## {title_start}")
    end = OPS.find("\n## ", start + 1)
    return OPS[start:end if end > 0 else None]


def test_k8s_sections_commands_parse():
    text = section("From a decision to a deployment") + section("Distributed load from a cluster")
    cmds = slabench_commands(text)
    assert [c[0] for c in cmds].count("k8s") >= 3 and "k8s-load" in [c[0] for c in cmds]
    for argv in cmds:
        args = _parser().parse_args(argv)
        assert args.command in ("matrix", "k8s", "k8s-load")


def test_readme_links_to_the_section():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    link = re.search(r"docs/operations\.md#(from-a-decision[^)]*)\)", readme).group(1)
    heading = next(ln[3:] for ln in OPS.splitlines() if ln.startswith("## From a decision"))
    slug = re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
    assert link == slug
