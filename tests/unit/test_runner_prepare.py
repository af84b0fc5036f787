"""runner.prepare: what a run is priced as (--gpu, --gpu-count, --target keeps the scenario's GPU) and
sim ids checked before anything launches (issue #13)."""

from __future__ import annotations

import pytest

from harness.config import ConfigError
from harness.runner import prepare
from harness.scoring.cost import price_lookup

SIM = """name: t
backend: {type: sim, gpu: h100-sxm, tensor_parallel_size: 2}
load: {users: 2, duration_s: 5}
"""


def write(tmp_path, text=SIM):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


def priced(scn) -> dict:
    return price_lookup(scn.model_dump(mode="json"), {})


def test_target_keeps_the_scenarios_gpu_and_count_for_cost(tmp_path):
    scn = prepare(write(tmp_path), None, "http://127.0.0.1:9")
    assert scn.backend.type == "external"
    p = priced(scn)
    assert (p["gpu"], p["gpu_count"], p["price_usd_per_gpu_hour"] is not None) == ("h100-sxm", 2, True)


def test_gpu_flags_override_what_the_run_is_priced_as(tmp_path):
    scn = prepare(write(tmp_path), None, "http://127.0.0.1:9", gpu="a10g", gpu_count=4)
    p = priced(scn)
    assert (p["gpu"], p["gpu_count"], p["gpu_count_source"]) == ("a10g", 4, "scenario cost.gpu_count")


def test_a_scenario_cost_section_wins_over_the_backend(tmp_path):
    scn = prepare(write(tmp_path, SIM + "cost: {gpu: l4, gpu_count: 1}\n"), None, "http://127.0.0.1:9")
    assert (priced(scn)["gpu"], priced(scn)["gpu_count"]) == ("l4", 1)


@pytest.mark.parametrize("kw, words", [
    ({"gpu": "abacus-9000"}, ["--gpu abacus-9000", "no price known", "h100-sxm", "gpu_price_usd_per_hour"]),
    ({"gpu_count": 0}, ["--gpu-count"]),
])
def test_bad_gpu_flags_are_one_line(tmp_path, kw, words):
    with pytest.raises(ConfigError) as ei:
        prepare(write(tmp_path), None, None, **kw)
    msg = str(ei.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_unknown_gpu_with_an_explicit_price_is_accepted(tmp_path):
    text = SIM + "cost: {gpu_price_usd_per_hour: 3.5}\n"
    scn = prepare(write(tmp_path, text), None, None, gpu="abacus-9000")
    assert priced(scn)["price_usd_per_gpu_hour"] == 3.5


@pytest.mark.parametrize("field, value, fix", [("gpu", "h999", "set backend.gpu"),
                                               ("model", "llama-99b", "set backend.model"),
                                               ("quantization", "int3", "set backend.quantization")])
def test_unknown_sim_ids_fail_before_anything_launches(tmp_path, field, value, fix):
    text = f"name: t\nbackend: {{type: sim, {field}: {value}}}\nload: {{users: 2, duration_s: 5}}\n"
    with pytest.raises(ConfigError) as ei:
        prepare(write(tmp_path, text), None, None)
    msg = str(ei.value)
    assert "\n" not in msg and value in msg and fix in msg and "s.yaml" in msg, msg
