"""Closed-loop load shape: how many users should be running at a given time of the run.

Pure: the Locust bridge's LoadTestShape asks `users_at` every second. Steps, ramps (a stage
reached at a low spawn rate), spikes and soaks are sequences of stages.
"""

from __future__ import annotations


def users_at(stages, t_s: float) -> tuple[int, float] | None:
    """(users, spawn rate per second) at `t_s` seconds into the run; None once every stage is over.

    A stage without a spawn rate reaches its user count at once (spawn rate = the change).
    """
    start = 0.0
    prev_users = 0
    for st in stages:
        if t_s < start + st.duration_s:
            rate = st.spawn_rate if st.spawn_rate is not None else float(max(abs(st.users - prev_users), 1))
            return st.users, rate
        start += st.duration_s
        prev_users = st.users
    return None


def start_gap_s(stages, t_s: float) -> float:
    """Seconds between user starts in the stage active at `t_s` (0 when it starts its users at once)."""
    start = 0.0
    for st in stages:
        if t_s < start + st.duration_s:
            return 1.0 / st.spawn_rate if st.spawn_rate is not None else 0.0
        start += st.duration_s
    return 0.0


class StartPacer:
    """When each newly spawned closed-loop user sends its first request.

    Locust starts floor(spawn_rate) users at once, once a second. A closed loop started that way
    runs in lock-step: every stream's first token, and later its last, arrives in the same burst,
    and the client's own queueing shows up as TTFT. Users are instead given start slots
    1/spawn_rate apart (times `share`: a worker that gets 1/share of the users).
    """

    def __init__(self, stages, load_start_s: float, share: int = 1):
        self.stages = list(stages)
        self.load_start_s = load_start_s
        self.share = max(int(share), 1)
        self._next_s = load_start_s

    def slot_s(self, now_s: float) -> float:
        """The start time for a user spawned at `now_s` (never before it)."""
        start = max(self._next_s, now_s)
        self._next_s = start + self.share * start_gap_s(self.stages, now_s - self.load_start_s)
        return start
