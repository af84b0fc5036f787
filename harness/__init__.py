"""slabench: load-testing and SLA-benchmarking for LLM servers.

The package is split by seam: config → backends → load → records → scoring → report.
"""

__version__ = "0.1.0"
