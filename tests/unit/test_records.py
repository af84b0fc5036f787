import json

from harness.records import GpuSample, RecordWriter, RequestRecord, iter_records, load_run, read_csv, write_csv


def test_writer_flushes_on_interval_so_a_crash_loses_at_most_that(tmp_path):
    now = [0.0]
    path = tmp_path / "requests.jsonl"
    w = RecordWriter(path, flush_every_s=1.0, clock=lambda: now[0])
    w.write(RequestRecord("a", "openai-chat", 0, 1, 200, True))
    assert path.read_text() == ""  # buffered: within the flush interval
    now[0] = 1.5
    w.write(RequestRecord("b", "openai-chat", 0, 1, 200, True))
    assert [r.request_id for r in iter_records(path)] == ["a", "b"]
    w.close()


def test_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "r.jsonl"
    good = RequestRecord("a", "openai-chat", 0, 1, 200, True, ttft_s=0.1).to_json()
    path.write_text(good + "\n" + good[:20])
    recs = list(iter_records(path))
    assert len(recs) == 1 and recs[0].ttft_s == 0.1


def test_tpot_definition():
    r = RequestRecord("a", "x", 0, 1, 200, True, ttft_s=0.1, e2e_s=1.1, output_tokens=11)
    assert abs(r.tpot_s - 0.1) < 1e-12
    assert RequestRecord("b", "x", 0, 1, 200, True, ttft_s=0.1, e2e_s=1.1, output_tokens=1).tpot_s is None


def test_csv_round_trip_keeps_types_and_nones(tmp_path):
    rows = [GpuSample(1.0, 0, "GPU", util_gpu_pct=50.0, mem_used_bytes=10, simulated=True),
            GpuSample(1.25, 0, "GPU")]
    write_csv(tmp_path / "gpu.csv", rows, GpuSample)
    back = read_csv(tmp_path / "gpu.csv", GpuSample)
    assert back == rows


def test_load_run_reads_a_folder(tmp_path):
    (tmp_path / "scenario.yaml").write_text("name: x\n")
    (tmp_path / "meta.json").write_text(json.dumps({"scenario_name": "x"}))
    (tmp_path / "requests.jsonl").write_text(RequestRecord("a", "x", 0, 1, 200, True).to_json() + "\n")
    run = load_run(tmp_path)
    assert run.scenario["name"] == "x" and len(run.records) == 1 and run.gpu_samples == []


def test_from_dict_ignores_unknown_keys_and_keeps_defaults():
    r = RequestRecord.from_dict({"request_id": "a", "api": "x", "sent_s": 0, "end_s": 1, "status": 200, "ok": True,
                                 "new_field_from_a_later_schema": 3})
    assert r.request_id == "a" and r.itl_s == [] and r.output_tokens_source == "chunks"


def test_lazy_records_read_the_file_on_first_use(tmp_path):
    from harness.records import LazyRecords, load_run_parts
    (tmp_path / "scenario.yaml").write_text("name: x\n")
    path = tmp_path / "requests.jsonl"
    path.write_text(RequestRecord("a", "x", 0, 1, 200, True).to_json() + "\n")
    run = load_run_parts(tmp_path)
    assert run.records == [] and run.table is None and run.scenario == {"name": "x"}
    lazy = LazyRecords(path)
    path.write_text(path.read_text() + RequestRecord("b", "x", 0, 1, 200, True).to_json() + "\n")  # before first use
    assert [r.request_id for r in lazy] == ["a", "b"] and len(lazy) == 2 and lazy[1].request_id == "b"
    assert len(LazyRecords(tmp_path / "missing.jsonl")) == 0
