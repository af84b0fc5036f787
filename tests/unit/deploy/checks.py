"""Checks the deploy tests share: every written manifest against the pinned Kubernetes schemas (strict),
and the `slabench` commands a README or doc gives, as argv for the real CLI parser."""

from __future__ import annotations

import shlex
from pathlib import Path

import kubernetes_validate
import yaml

K8S_VERSION = "1.33.0"  # the pinned Kubernetes release the manifests are validated against


def validate(doc: dict) -> None:
    """Raises kubernetes_validate.ValidationError when `doc` is not a valid object of its kind."""
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def load_validated(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    validate(doc)
    return doc


def slabench_commands(text: str) -> list[list[str]]:
    """Every `slabench ...` command line in the fenced code blocks of a Markdown text, as argv after `slabench`."""
    out, fenced = [], False
    for line in text.replace("\\\n", " ").splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced or not line.strip().startswith("slabench "):
            continue
        argv = []
        for tok in shlex.split(line.split(" #", 1)[0])[1:]:
            if tok in ("&&", "||", "|", ";", "&"):
                break
            argv.append(tok)
        out.append(argv)
    return out
