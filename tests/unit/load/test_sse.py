from harness.load.sse import SSEParser


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
        general._buf = b"\n\n"  # forces the general path; the leading blank event yields nothing
        assert SSEParser().feed(block) == general.feed(block), block
