"""The dispatcher with an injected clock: send times follow the schedule, the cap delays and counts."""

from harness.load.openloop import OpenLoopDispatcher, schedule_lag


class FakeClock:
    def __init__(self, t=100.0):
        self.t = t

    def sleep_until(self, target):
        self.t = max(self.t, target)  # absolute target: never drifts, never sleeps backwards


def test_sends_at_scheduled_times_from_the_start():
    clock = FakeClock()
    sent = []
    d = OpenLoopDispatcher([0.0, 0.5, 0.5, 2.0], start_s=100.0, sleep_until=clock.sleep_until,
                           launch=lambda k, sched, cap_wait_s: sent.append((k, sched, clock.t)), in_flight=lambda: 0,
                           wait_slot=lambda deadline_s: True, max_in_flight=4)
    stats = d.run()
    assert [s[1] for s in sent] == [100.0, 100.5, 100.5, 102.0]
    assert all(sched == actual for _, sched, actual in sent)
    assert (stats.scheduled, stats.sent, stats.delayed_by_cap, stats.not_sent) == (4, 4, 0, 0)


def test_slow_launch_does_not_shift_later_due_times():
    clock = FakeClock()
    sent = []

    def launch(k, sched, cap_wait_s):
        sent.append((sched, clock.t))
        clock.t += 0.3  # each launch costs 300 ms (a saturated client)

    OpenLoopDispatcher([0.0, 0.1, 1.0], 100.0, sleep_until=clock.sleep_until, launch=launch,
                       in_flight=lambda: 0, wait_slot=lambda deadline_s: True).run()
    assert [s for s, _ in sent] == [100.0, 100.1, 101.0]  # schedule kept
    assert [round(a - s, 6) for s, a in sent] == [0.0, 0.2, 0.0]  # lag shows the client fell behind


def test_in_flight_cap_holds_requests_back_and_counts_them():
    clock = FakeClock()
    running = []
    sent = []

    def wait_slot(deadline_s):
        clock.t += 1.0  # a request finishes a second later
        running.pop()
        return True

    def launch(k, sched, cap_wait_s):
        running.append(k)
        sent.append(clock.t)

    stats = OpenLoopDispatcher([0.0, 0.1, 0.2], 100.0, sleep_until=clock.sleep_until, launch=launch,
                               in_flight=lambda: len(running), wait_slot=wait_slot, max_in_flight=2).run()
    assert stats.delayed_by_cap == 1 and stats.sent == 3
    assert sent == [100.0, 100.1, 101.2]


def test_stop_request_ends_early():
    clock = FakeClock()
    n = []
    stats = OpenLoopDispatcher([0, 1, 2], 0.0, sleep_until=clock.sleep_until, launch=lambda k, s, w: n.append(k),
                               in_flight=lambda: 0, wait_slot=lambda deadline_s: True, should_stop=lambda: len(n) >= 2).run()
    assert n == [0, 1] and stats.stopped_early
    assert (stats.scheduled, stats.sent, stats.not_sent) == (3, 2, 1)


def test_schedule_lag_and_saturation_threshold():
    lag = schedule_lag([0.0, 1.0, 2.0, 3.0], [0.001, 1.002, 2.0005, 3.004])
    assert lag["n"] == 4 and abs(lag["max_s"] - 0.004) < 1e-9 and not lag["saturated"]
    assert schedule_lag([0.0, 1.0], [0.0, 1.05])["saturated"]
    assert schedule_lag([], [])["p99_s"] is None
