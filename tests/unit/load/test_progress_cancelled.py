"""The live progress line counts cancelled_at_stop records apart from server errors."""

from harness.load.progress import ProgressTail
from harness.records import RequestRecord


def test_cancelled_at_stop_is_not_shown_as_an_error(tmp_path):
    recs = [RequestRecord(request_id="a", api="openai-chat", sent_s=0, end_s=1, status=500, ok=False,
                          error_type="http_5xx"),
            RequestRecord(request_id="b", api="openai-chat", sent_s=0, end_s=9, status=200, ok=False,
                          error_type="cancelled_at_stop", ttft_s=0.2)]
    (tmp_path / "requests.jsonl").write_text("".join(r.to_json() + "\n" for r in recs))
    t = ProgressTail(tmp_path / "requests.jsonl")
    assert t.poll() == 2 and (t.errors, t.cancelled) == (1, 1)
    line = t.line(12.0, 10.0)
    assert "errors 1 cancelled at stop 1" in line and "done 2" in line
