from harness.config import LoadConfig
from harness.load.shape import users_at


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
