"""Capacity per matrix variant: which variants can be searched, and why not the others."""

from harness.config import parse_scenario, resolve_scenario
from harness.decide.capacity import variant_capacity


def _scn(**over):
    doc = {"name": "c", "backend": {"type": "sim"}, "load": {"mode": "open", "rate_rps": 2, "duration_s": 10}}
    doc.update(over)
    return resolve_scenario(parse_scenario(doc))


def test_live_variants_are_left_to_slabench_sweep(tmp_path):
    scn = _scn(backend={"type": "external", "url": "http://127.0.0.1:9", "model": "m"})
    c = variant_capacity(scn, tmp_path, echo=lambda s: None)
    assert c["capacity"] is None and "run `slabench sweep`" in c["reason"]
    assert not (tmp_path / "points").exists()  # nothing was run


def test_rate_stages_cannot_be_searched(tmp_path):
    scn = _scn(load={"mode": "open", "stages": [{"duration_s": 5, "rate_rps": 1}, {"duration_s": 5, "rate_rps": 2}]})
    c = variant_capacity(scn, tmp_path, echo=lambda s: None)
    assert c["capacity"] is None and "load.stages" in c["reason"]


def test_precision_without_capacity_is_a_one_line_error(capsys):
    from harness.cli import main

    assert main(["matrix", "scenarios/matrix-gpus.yaml", "--precision", "0.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "slabench: error: --precision sets the capacity search: add --capacity, or drop --precision"
