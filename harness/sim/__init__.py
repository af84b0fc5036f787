"""Simulated LLM server (vLLM / TGI flavors) with a GPU performance model.

Entry points: `python -m harness.sim serve ...` (see cli.py) and the offline
`harness.sim.scheduler.simulate` for traces without sockets.
"""
