from hypothesis import given, settings, strategies as st

from harness.load.sse import MAX_EVENT_BYTES, SSEParser


def test_vllm_framing_with_space_and_done():
    p = SSEParser()
    out = p.feed(b'data: {"a":1}\n\ndata: {"a":2}\n\ndata: [DONE]\n\n')
    assert out == [b'{"a":1}', b'{"a":2}', b"[DONE]"]
    assert p.pending == b""


def test_tgi_framing_without_space():
    p = SSEParser()
    assert p.feed(b'data:{"index":1}\n\n') == [b'{"index":1}']


def test_event_split_across_blocks_is_delivered_once_complete():
    p = SSEParser()
    assert p.feed(b'data: {"a"') == []
    assert p.feed(b":1}\n") == []
    assert p.feed(b"\ndata: [DO") == [b'{"a":1}']
    assert p.feed(b"NE]\n\n") == [b"[DONE]"]


def test_keepalive_comments_and_crlf():
    p = SSEParser()
    assert p.feed(b":\n\n: keep-alive\n\n") == []
    assert p.feed(b'data: {"x":1}\r\n\r\n') == [b'{"x":1}']


def test_multiline_data_joined_and_other_fields_ignored():
    p = SSEParser()
    assert p.feed(b"event: msg\nid: 7\ndata: a\ndata: b\n\n") == [b"a\nb"]


def test_close_delivers_unterminated_final_event():
    p = SSEParser()
    assert p.feed(b'data:{"generated_text":"x"}') == []
    assert p.close() == [b'{"generated_text":"x"}']
    assert p.close() == []


def test_single_event_fast_path_matches_the_general_split():
    blocks = [b'data: {"a":1}\n\n', b'data:{"b":2}\n\n', b"data: [DONE]\n\n", b": keep-alive\n\n",
              b'event: x\ndata: y\n\n', b'data: {"c":3}\n\ndata: {"d":4}\n\n']
    for block in blocks:
        general = SSEParser()
        general._buf = bytearray(b"\n\n")  # forces the general path; the leading blank event yields nothing
        assert SSEParser().feed(block) == general.feed(block), block


def test_crlf_split_between_two_reads_still_ends_the_event():
    p = SSEParser()
    assert p.feed(b"data: [DONE]\r") == []
    assert p.feed(b"\n\r\n") == [b"[DONE]"]
    assert p.feed(b"data: x\r\n\r") == []
    assert p.close() == [b"x"]


# -- bounded and linear: a broken or hostile server cannot make the client buffer or re-scan

class CountingBuffer(bytearray):
    """The parser's tail, counting every byte a search or a copy into it touches."""

    touched = 0

    def find(self, sub, start=0, *rest):
        CountingBuffer.touched += len(self) - max(start, 0)
        return super().find(sub, start, *rest)

    def __contains__(self, sub):
        CountingBuffer.touched += len(self)
        return super().__contains__(sub)

    def __iadd__(self, other):
        CountingBuffer.touched += len(other)
        return super().__iadd__(other)


def _work_to_parse_one_event(size_bytes: int, block_bytes: int = 65536) -> int:
    p = SSEParser(max_event_bytes=size_bytes + block_bytes)
    tail = p._buf = CountingBuffer()
    CountingBuffer.touched = 0
    data = b"data: " + b"x" * size_bytes + b"\n\n"
    out = []
    for i in range(0, len(data), block_bytes):
        out += p.feed(data[i:i + block_bytes])
    assert out == [data[6:-2]] and p.error is None
    assert p._buf is tail  # grown in place: never rebuilt by concatenation (a copy of it all per read)
    return CountingBuffer.touched


def test_parsing_one_huge_event_is_linear_in_its_size():
    # The old parser joined and searched the whole tail on every read: ~3.7 s for one 20 MB event.
    small, big = _work_to_parse_one_event(2_000_000), _work_to_parse_one_event(20_000_000)
    assert big <= 2.2 * 20_000_000  # each byte is copied in once and searched about once
    assert 9 <= big / small <= 11  # ten times the bytes, ten times the work (quadratic: ~100)


def test_an_event_over_the_cap_stops_buffering_and_says_why():
    import tracemalloc

    block = b"z" * 65536
    p = SSEParser()
    tracemalloc.start()
    try:
        assert p.feed(b"data: {") == []
        for _ in range(1600):  # 100 MB of one event that never ends
            assert p.feed(block) == []
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert p.error and "8 MiB" in p.error and "\n" not in p.error
    assert len(p.pending) == 0 and p.close() == []
    assert peak < 3 * MAX_EVENT_BYTES  # the tail and one copy of it at most, never the 100 MB


# -- properties: any framing of the same bytes gives the same events

_line = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))
_event = st.one_of(
    st.lists(_line, min_size=1, max_size=3).map(lambda ls: b"\n".join(b"data: " + x for x in ls)),
    _line.map(lambda x: b"data:" + x),
    _line.map(lambda x: b": " + x),  # a keep-alive comment
    st.tuples(_line, _line).map(lambda t: b"event: " + t[0] + b"\ndata: " + t[1]),
)


def _reference(events: list[bytes]) -> list[bytes]:
    """The payloads per the SSE spec, computed per event without any framing."""
    out = []
    for ev in events:
        lines = [ln[6:] if ln[5:6] == b" " else ln[5:] for ln in ev.split(b"\n") if ln.startswith(b"data:")]
        if lines:
            out.append(b"\n".join(lines))
    return out


def _cuts(draw, n: int, max_block: int) -> list[int]:
    cuts, i = [], 0
    while i < n:
        i = min(n, i + draw(st.integers(1, max_block)))
        cuts.append(i)
    return cuts


@st.composite
def _framed(draw):
    events = draw(st.lists(_event, max_size=12))
    crlf = draw(st.booleans())
    data = b"".join(ev + b"\n\n" for ev in events)
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    return events, data, _cuts(draw, len(data), draw(st.sampled_from([1, 3, 17, 200])))


@settings(max_examples=100, deadline=None)
@given(_framed())
def test_any_split_of_a_stream_gives_the_spec_payloads(case):
    events, data, cuts = case
    p, out, start = SSEParser(), [], 0
    for end in cuts:
        out += p.feed(data[start:end])
        start = end
    out += p.close()
    assert out == _reference(events)


@st.composite
def _around_the_cap(draw):
    cap = draw(st.integers(16, 64))
    sizes = draw(st.lists(st.integers(0, 2 * cap), min_size=1, max_size=8))
    events = [b"data: " + b"a" * n for n in sizes]
    data = b"".join(ev + b"\n\n" for ev in events)
    max_block = draw(st.integers(1, cap))
    return cap, events, data, max_block, _cuts(draw, len(data), max_block)


@settings(max_examples=100, deadline=None)
@given(_around_the_cap())
def test_events_around_the_cap_are_delivered_or_refused_never_buffered_past_it(case):
    cap, events, data, max_block, cuts = case
    p, out, start = SSEParser(max_event_bytes=cap), [], 0
    for end in cuts:
        out += p.feed(data[start:end])
        start = end
        assert len(p.pending) <= cap  # memory bound after every read
    out += p.close()
    want = _reference(events)
    assert out == want[:len(out)]  # whatever was delivered is right, in order
    raw_sizes = [len(ev) + 2 for ev in events]
    if max(raw_sizes) <= cap:
        assert p.error is None and out == want
    if max(raw_sizes) > cap + max_block:  # its tail must have passed the cap before its end came
        assert p.error is not None
    if p.error is None:
        assert out == want
