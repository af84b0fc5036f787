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
