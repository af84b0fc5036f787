"""Locustfile for `slabench worker`: every slabench user class, so a worker serves whichever API its
master's scenario uses (the master names the class; the worker needs only to have it).

By hand: `locust -f loadtests/any_api.py --worker --master-host MASTER`.
"""

from harness.load.locust_bridge import OpenAIChatUser, OpenAICompletionsUser, TGIStreamUser  # noqa: F401
