"""Simulated LLM server (vLLM / TGI flavors) with a GPU performance model.

Entry points: `python -m harness.sim serve ...` (see cli.py) and the offline
`harness.sim.scheduler.simulate` for traces without sockets.
"""

# The gateway key (`serve --api-key`) is read from this variable when the flag is absent, so a
# launcher can keep it off the command line. Here, not in cli.py, so launchers import nothing heavy.
SIM_API_KEY_ENV = "SLABENCH_SIM_API_KEY"
