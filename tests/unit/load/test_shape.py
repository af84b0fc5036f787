from harness.config import LoadConfig
from harness.load.shape import StartPacer, start_gap_s, users_at


def test_plain_users_hold_for_the_duration_then_stop():
    stages = LoadConfig(users=8, duration_s=10).closed_stages()
    assert users_at(stages, 0) == (8, 8.0)
    assert users_at(stages, 9.99) == (8, 8.0)
    assert users_at(stages, 10.0) is None


def test_ramp_step_spike_soak():
    load = LoadConfig(user_stages=[{"duration_s": 30, "users": 30, "spawn_rate": 1},
                                   {"duration_s": 10, "users": 100},
                                   {"duration_s": 60, "users": 30, "spawn_rate": 10}])
    assert load.duration_s == 100
    st = load.closed_stages()
    assert users_at(st, 5) == (30, 1)      # ramping one user a second
    assert users_at(st, 35) == (100, 70.0)  # the spike arrives at once
    assert users_at(st, 45) == (30, 10)     # back down at 10 users/s
    assert users_at(st, 100) is None


def test_user_stages_only_in_closed_mode():
    import pytest

    with pytest.raises(ValueError, match="user_stages apply to mode: closed"):
        LoadConfig(mode="open", rate_rps=1, user_stages=[{"duration_s": 1, "users": 1}])
    with pytest.raises(ValueError, match="differs from the sum of user_stages"):
        LoadConfig(duration_s=5, user_stages=[{"duration_s": 1, "users": 1}])


def _stages(**kw):
    return LoadConfig(**kw).closed_stages()


def test_users_spawned_together_get_evenly_spaced_start_slots():
    # Locust spawns floor(rate) users at once; at 4 users/s they must start 0.25 s apart.
    pacer = StartPacer(_stages(users=8, spawn_rate=4, duration_s=30), load_start_s=100.0)
    slots = [pacer.slot_s(100.0) for _ in range(4)]
    assert slots == [100.0, 100.25, 100.5, 100.75]
    # Locust's next batch, one second later, continues the same spacing.
    assert [pacer.slot_s(101.0) for _ in range(4)] == [101.0, 101.25, 101.5, 101.75]


def test_a_late_spawn_starts_at_once_and_never_before_it_was_spawned():
    pacer = StartPacer(_stages(users=2, spawn_rate=2, duration_s=30), load_start_s=0.0)
    assert pacer.slot_s(0.0) == 0.0
    assert pacer.slot_s(5.0) == 5.0  # the previous slot (0.5) is long past
    assert pacer.slot_s(5.0) == 5.5


def test_no_spawn_rate_means_all_at_once_and_workers_space_their_share():
    at_once = StartPacer(_stages(users=3, duration_s=30), load_start_s=0.0)
    assert [at_once.slot_s(1.0) for _ in range(3)] == [1.0, 1.0, 1.0]
    # Two workers each get half of a 10 users/s batch: each spaces its own users 0.2 s apart.
    worker = StartPacer(_stages(users=10, spawn_rate=10, duration_s=30), load_start_s=0.0, share=2)
    assert [round(worker.slot_s(0.0), 9) for _ in range(3)] == [0.0, 0.2, 0.4]


def test_start_gap_follows_the_stage_in_force():
    stages = _stages(user_stages=[{"duration_s": 10, "users": 4, "spawn_rate": 2},
                                  {"duration_s": 10, "users": 20}])
    assert start_gap_s(stages, 5.0) == 0.5
    assert start_gap_s(stages, 15.0) == 0.0  # a step: everyone at once
    assert start_gap_s(stages, 25.0) == 0.0  # after the last stage
