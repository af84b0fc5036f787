"""`slabench schema` and `slabench init`: the JSON Schema of scenario files, and a starter folder.

The schema is generated from the pydantic models (harness.config.Scenario); the starter files are
templates shipped as package data (harness/data/init/), so a pip install without a clone has them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from harness.config import ConfigError, Scenario

SCHEMA_FILE = "scenario.schema.json"
TEMPLATES = Path(__file__).resolve().parent / "data" / "init"
STARTER_FILES = ("scenario.yaml", "sla.yaml")  # the scenario first: it is the one to run
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"  # the dialect pydantic generates
SCHEMA_DESCRIPTION = ("A slabench scenario file: the backend under test, the load, the workload, the SLA policy "
                      "and the cost. Generated from harness.config.Scenario by `slabench schema`.")


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema of scenario files (unknown keys are refused: additionalProperties false)."""
    schema = {k: v for k, v in Scenario.model_json_schema().items() if k not in ("title", "description")}
    return {"$schema": JSON_SCHEMA_DIALECT, "title": "slabench scenario", "description": SCHEMA_DESCRIPTION,
            **schema}


def schema_text() -> str:
    """The schema as `slabench schema` prints it and scenarios/scenario.schema.json holds it (sorted keys)."""
    return json.dumps(scenario_schema(), indent=2, sort_keys=True) + "\n"


def _scenario_name(folder: Path) -> str:
    """A valid scenario name from the folder's name ('my bench' → 'my-bench'), else 'starter'."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", folder.resolve().name).lstrip("-_.")[:100]
    return name or "starter"


def init(folder: Path) -> list[Path]:
    """Write scenario.yaml, sla.yaml and the schema into `folder` (created if missing); never overwrite."""
    folder = Path(folder)
    texts = {name: (TEMPLATES / name).read_text(encoding="utf-8") for name in STARTER_FILES}
    texts["scenario.yaml"] = texts["scenario.yaml"].replace("{{name}}", _scenario_name(folder))
    texts[SCHEMA_FILE] = schema_text()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file, not a folder: choose another folder")
    for name in texts:
        if os.path.lexists(folder / name):
            raise ConfigError(f"{folder / name} exists: choose another folder or remove it")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in texts.items():
        with open(folder / name, "x", encoding="utf-8") as f:  # "x": a file that appeared meanwhile is kept
            f.write(text)
        written.append(folder / name)
    return written
