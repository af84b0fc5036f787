from harness.load.progress import ProgressTail, write_status
from harness.records import RequestRecord


def rec(i, ok=True, ttft=0.05):
    return RequestRecord(request_id=str(i), api="openai-chat", sent_s=0, end_s=1, status=200 if ok else 500,
                         ok=ok, ttft_s=ttft if ok else None).to_json()


def test_tail_reads_only_new_complete_lines(tmp_path):
    path = tmp_path / "requests.jsonl"
    t = ProgressTail(path)
    assert t.poll() == 0  # file not there yet
    path.write_text(rec(1) + "\n" + rec(2, ok=False) + "\n" + rec(3)[:10])
    assert t.poll() == 2
    with open(path, "a") as fh:
        fh.write(rec(3)[10:] + "\n")
    assert t.poll() == 1
    assert (t.completed, t.errors) == (3, 1)
    line = t.line(4.0, 30.0)
    assert "done 3" in line and "errors 1" in line and "TTFT p50 50 ms" in line


def test_line_shows_offered_rate_and_in_flight_from_the_status_file(tmp_path):
    status = tmp_path / "status.json"
    write_status(str(status), issued=12, completed=9)  # what the Locust side writes every second
    assert not (tmp_path / "status.json.tmp").exists()
    t = ProgressTail(tmp_path / "requests.jsonl", status_path=status, offered_rps=8.0)
    line = t.line(2.0, 10.0)
    assert "offered 8.0 req/s" in line and "in flight 3" in line


def test_clock_never_counts_past_the_duration(tmp_path):
    p = tmp_path / "requests.jsonl"
    p.write_text("")
    t = ProgressTail(p)
    assert t.line(15.0, 15.0).startswith("[   15/15 s]")
    late = t.line(54.4, 15.0)
    assert late.startswith("[   15/15 s, stopping +39 s]") and "54/15" not in late
