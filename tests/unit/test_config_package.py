"""The config package finds the shipped SLA presets from any folder (not only the clone's root)."""

from harness.config import load_sla


def test_shipped_presets_load_outside_the_clone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    policy = load_sla("guide")
    assert policy.name == "guide" and any(r.metric == "ttft_s" for r in policy.rows)
