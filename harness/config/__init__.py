"""Config seam: pydantic models for scenarios, SLA policies and backends, and the hardened YAML reader.

`scenario.py` holds scenario/SLA models and loaders, `backends.py` one model per backend type,
`errors.py` the one-line ConfigError and the bounded YAML reader. Import from `harness.config`.
"""

from harness.config.scenario import *  # noqa: F401,F403  (the package's public names)
from harness.config.scenario import _Model, _read_yaml  # noqa: F401  (used by sibling seams)
from harness.config.trace import TraceConfig, TraceFormat  # noqa: F401  (workload.trace)
