"""Locustfile: streams LLM requests with OpenAIChatUser (see harness/load/locust_bridge.py).

By hand: `locust -f loadtests/openai_chat.py --host http://127.0.0.1:8000 --headless -u 8 -t 30s`;
`slabench run` uses it with --slabench-config pointing at the run's load settings.
"""

from harness.load.locust_bridge import OpenAIChatUser, SlabenchShape  # noqa: F401  (Locust picks up the imported classes)
