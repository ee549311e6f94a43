"""Byte-level tests of fasterapi._websocket, the sans-IO RFC 6455 / RFC 7692 core.

Every stream is fed whole, byte by byte and in random pieces: the verdict must
not depend on how TCP split it.  Oracles: Python's UTF-8 decoder (with a
brute-force "can this prefix still become valid?" check for the earliest
failing fragment), zlib, and the ``websockets`` / ``wsproto`` frame code.
"""

from __future__ import annotations

import os
import random
import zlib
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fasterapi._websocket import (
    BytesMessage,
    Close,
    FrameParser,
    FrameWriter,
    PerMessageDeflate,
    Ping,
    Pong,
    TextMessage,
    WebSocketError,
    _parse_extensions,
    _utf8_check,
    apply_mask,
    build_close,
    build_frame,
)

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
SPLITS = ("whole", "bytewise", "random")
KEY = b"\x37\xfa\x21\x3d"


def masked(opcode, payload=b"", *, fin=True, rsv1=False, key=KEY):
    """A client frame, built without the writer's checks."""
    return build_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=key, check=False)


def pieces(data: bytes, how: str, seed: int = 0):
    if how == "whole":
        return [data]
    if how == "bytewise":
        return [data[i:i + 1] for i in range(len(data))]
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(data):
        j = i + rng.randint(1, 40)
        out.append(data[i:j])
        i = j
    return out


def parse(data: bytes, how: str = "whole", seed: int = 0, **kw):
    """Feed `data` split as `how` says; return (events, WebSocketError or None).

    A `deflate` given is copied (fresh zlib state), so one `kw` serves
    several runs."""
    d = kw.get("deflate")
    if d is not None:
        kw["deflate"] = PerMessageDeflate(
            server_no_context_takeover=d.server_no_context_takeover,
            client_no_context_takeover=d.client_no_context_takeover,
            server_max_window_bits=d.server_max_window_bits)
    p = FrameParser(**kw)
    events = []
    try:
        for piece in pieces(data, how, seed):
            p.feed(piece)
            while (ev := p.next_event()) is not None:
                events.append(ev)
    except WebSocketError as exc:
        return events, exc
    return events, None


def error_code(data: bytes, **kw) -> int:
    """The close code for `data`, identical for every way of splitting it."""
    codes = set()
    for how in SPLITS:
        _, err = parse(data, how, **kw)
        assert err is not None, how
        codes.add(err.code)
    assert len(codes) == 1, codes
    return codes.pop()


# ------------------------------------------------------------ valid streams

@pytest.mark.parametrize("how", SPLITS)
@pytest.mark.parametrize("size", [0, 1, 7, 125, 126, 127, 65535, 65536, 70001])
def test_single_frame_round_trip(how, size):
    text = ("é" * size)[:size]
    blob = os.urandom(size)
    data = masked(1, text.encode()) + masked(2, blob)
    events, err = parse(data, how if size < 5000 else "random")
    assert err is None
    assert events == [TextMessage(text), BytesMessage(blob)]


@pytest.mark.parametrize("how", SPLITS)
def test_fragments_with_interleaved_control_frames(how):
    data = (masked(1, b"za", fin=False) + masked(9, b"p1")
            + masked(0, "\u017c".encode()[:1], fin=False) + masked(10, b"")
            + masked(0, "\u017c".encode()[1:] + b"!", fin=False) + masked(0, b"", fin=True)
            + masked(2, b"x", fin=False) + masked(0, b"yz"))
    events, err = parse(data, how)
    assert err is None
    assert events == [Ping(b"p1"), Pong(b""), TextMessage("za\u017c!"), BytesMessage(b"xyz")]


def test_empty_fragments_make_an_empty_message():
    events, err = parse(masked(1, b"", fin=False) + masked(0, b"", fin=False) + masked(0, b""))
    assert err is None and events == [TextMessage("")]


@pytest.mark.parametrize("how", SPLITS)
def test_writer_frames_parse_in_client_mode(how):
    w = FrameWriter()
    data = (w.text("hi \u2603") + w.binary(b"\x00" * 300) + w.binary(bytearray(70000))
            + w.ping(b"p") + w.pong() + w.close(1001, "away"))
    events, err = parse(data, how if how != "bytewise" else "random", client_mode=True)
    assert err is None
    assert events == [TextMessage("hi \u2603"), BytesMessage(b"\x00" * 300),
                      BytesMessage(bytes(70000)), Ping(b"p"), Pong(b""), Close(1001, "away")]


def test_non_minimal_lengths_are_accepted():
    # Decision documented in the module: only the sender must be minimal (§5.2).
    for header in (b"\x82\xfe\x00\x05", b"\x82\xff" + (5).to_bytes(8, "big")):
        data = header + KEY + apply_mask(b"hello", KEY)
        assert parse(data, "bytewise") == ([BytesMessage(b"hello")], None)


def test_buffered_and_trailing_bytes():
    p = FrameParser()
    p.feed(masked(2, b"abc") + b"\x82")
    assert p.next_event() == BytesMessage(b"abc")
    assert p.next_event() is None
    assert p.buffered == 1


def test_feed_accepts_buffers():
    frame = masked(2, b"abcdef")
    for obj in (frame, bytearray(frame), memoryview(b"xx" + frame)[2:]):
        p = FrameParser()
        p.feed(obj)
        assert p.next_event() == BytesMessage(b"abcdef")


# ------------------------------------------------------------ protocol errors

@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
def test_reserved_opcodes(opcode):
    assert error_code(masked(opcode, b"x")) == 1002


def test_header_errors_need_only_two_bytes():
    # Decided by the first two header bytes: no payload needed to fail.
    for head in (b"\x83\x80", b"\xa1\x80", b"\x91\x80", b"\xc1\x80", b"\x09\x80",
                 b"\x89\xfe", b"\x00\x80", b"\x81\x00"):
        p = FrameParser()
        p.feed(head)
        with pytest.raises(WebSocketError) as info:
            p.next_event()
        assert info.value.code == 1002, head


def test_rsv_bits():
    assert error_code(bytes([0xA1, 0x81]) + KEY + b"x") == 1002   # RSV2
    assert error_code(bytes([0x91, 0x81]) + KEY + b"x") == 1002   # RSV3
    assert error_code(masked(1, b"x", rsv1=True)) == 1002        # RSV1 without deflate
    d = PerMessageDeflate()
    z = PerMessageDeflate().compress(b"hello")
    assert error_code(masked(9, b"", rsv1=True), deflate=d) == 1002
    assert error_code(masked(1, z, fin=False, rsv1=True) + masked(0, b"", rsv1=True),
                      deflate=PerMessageDeflate()) == 1002


def test_control_frame_rules():
    assert error_code(masked(9, b"x", fin=False)) == 1002
    assert error_code(masked(9, b"x" * 126)) == 1002
    assert error_code(masked(10, b"x" * 126)) == 1002
    assert error_code(masked(8, b"\x03\xe8" + b"x" * 124)) == 1002
    assert parse(masked(9, b"x" * 125))[0] == [Ping(b"x" * 125)]


def test_fragmentation_rules():
    assert error_code(masked(0, b"x")) == 1002
    assert error_code(masked(1, b"x", fin=False) + masked(1, b"y")) == 1002
    assert error_code(masked(2, b"x", fin=False) + masked(2, b"y")) == 1002


def test_masking_direction():
    assert error_code(build_frame(1, b"x")) == 1002
    assert error_code(masked(1, b"x"), client_mode=True) == 1002


def test_64bit_length_msb():
    assert error_code(b"\x82\xff\x80" + b"\x00" * 7 + KEY, max_size=None) == 1002


def test_dead_parser_repeats_its_error():
    p = FrameParser()
    p.feed(masked(0, b"x") + masked(2, b"fine"))
    with pytest.raises(WebSocketError) as first:
        p.next_event()
    p.feed(masked(2, b"more"))
    with pytest.raises(WebSocketError) as second:
        p.next_event()
    assert first.value is second.value and p.buffered == 0


# ------------------------------------------------------------ max_size

def test_declared_length_is_checked_before_buffering():
    p = FrameParser(max_size=1000)
    p.feed(b"\x82\xfe\x03\xe9")          # 1001 bytes announced, none sent
    with pytest.raises(WebSocketError) as info:
        p.next_event()
    assert info.value.code == 1009


def test_max_size_bounds_the_reassembled_message():
    ok = masked(2, b"a" * 600, fin=False) + masked(0, b"b" * 400)
    assert parse(ok, max_size=1000) == ([BytesMessage(b"a" * 600 + b"b" * 400)], None)
    assert error_code(masked(2, b"a" * 600, fin=False) + masked(0, b"b" * 401),
                      max_size=1000) == 1009
    # Control frames do not count, and the limit is per message.
    ok = masked(2, b"a" * 600, fin=False) + masked(9, b"p" * 100) + masked(0, b"b" * 400)
    assert parse(ok + ok, max_size=1000)[1] is None
    assert parse(masked(2, b"x" * (1 << 20)), max_size=None)[1] is None


def test_max_size_bounds_inflated_messages():
    z = PerMessageDeflate().compress(b"\x00" * 5000)
    assert len(z) < 100
    assert error_code(masked(2, z, rsv1=True), max_size=4999, deflate=PerMessageDeflate()) == 1009
    events, err = parse(masked(2, z, rsv1=True), max_size=5000, deflate=PerMessageDeflate())
    assert err is None and events == [BytesMessage(b"\x00" * 5000)]


# ------------------------------------------------------------ close frames

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
               3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", VALID_CODES)
def test_close_valid_codes(code):
    data = masked(8, code.to_bytes(2, "big") + "fin \u00e9".encode())
    assert parse(data, "bytewise") == ([Close(code, "fin \u00e9")], None)
    assert build_close(code, "fin \u00e9") == build_frame(8, data[6:] and apply_mask(data[6:], KEY))


@pytest.mark.parametrize("code", INVALID_CODES)
def test_close_invalid_codes(code):
    assert error_code(masked(8, code.to_bytes(2, "big"))) == 1002
    with pytest.raises(ValueError):
        build_close(code)


def test_close_payload_shapes():
    assert parse(masked(8, b"")) == ([Close(1005, "")], None)
    assert error_code(masked(8, b"\x03")) == 1002
    assert error_code(masked(8, b"\x03\xe8\xff")) == 1007
    assert error_code(masked(8, b"\x03\xe8\xed\xa0\x80")) == 1007


def test_nothing_is_read_after_close():
    p = FrameParser()
    p.feed(masked(8, b"\x03\xe8") + masked(0, b"garbage"))
    assert p.next_event() == Close(1000, "")
    assert p.next_event() is None
    p.feed(b"\xff\xff")
    assert p.next_event() is None


def test_build_close_limits():
    assert build_close(1000, "x" * 123)
    with pytest.raises(ValueError):
        build_close(1000, "x" * 124)
    with pytest.raises(ValueError):
        build_close(1000, "\u00e9" * 62)    # 124 bytes of UTF-8
    assert build_close(None) == b"\x88\x00"
    with pytest.raises(ValueError):
        build_close(None, "why")
    assert FrameWriter().close() == b"\x88\x02\x03\xe8"


def test_writer_checks_control_payloads():
    w = FrameWriter()
    assert w.ping(b"x" * 125)[1] == 125
    with pytest.raises(ValueError):
        w.ping(b"x" * 126)
    with pytest.raises(ValueError):
        build_frame(3, b"")
    with pytest.raises(ValueError):
        build_frame(9, b"", fin=False)
    with pytest.raises(ValueError):
        build_frame(1, b"", mask=b"abc")


# ------------------------------------------------------------ masking

def ref_mask(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def test_mask_all_lengths_and_alignments():
    # Every length up to 70 at every start offset within an 8-byte word, so
    # the head/word/tail split of the loop is hit in every combination.
    base = bytearray(os.urandom(100))
    for offset in range(8):
        for n in range(71):
            view = memoryview(base)[offset:offset + n]
            assert apply_mask(view, KEY) == ref_mask(bytes(view), KEY)


def test_client_frames_mask_every_length():
    base = os.urandom(200)
    for n in list(range(71)) + [125, 126, 65535, 65536]:
        payload = (base * (n // 200 + 1))[:n]
        frame = build_frame(2, payload, mask=KEY)
        assert frame[frame.index(KEY) + 4:] == ref_mask(payload, KEY)
        assert parse(frame) == ([BytesMessage(payload)], None)


def test_parser_unmasks_odd_lengths_at_odd_offsets():
    # Frames after a 1..7-byte frame start at every alignment in the buffer.
    rng = random.Random(7)
    data, expected = b"", []
    for n in list(range(1, 40)) + [65536 + 3, 131071]:
        key = rng.randbytes(4)
        payload = rng.randbytes(n)
        data += masked(2, payload, key=key)
        expected.append(BytesMessage(payload))
    assert parse(data, "random") == (expected, None)


def test_mask_matches_websockets():
    speedups = pytest.importorskip("websockets.speedups")
    for n in (0, 1, 3, 8, 15, 16, 17, 1000, 65536 + 5):
        data = os.urandom(n)
        assert apply_mask(data, KEY) == speedups.apply_mask(data, KEY)


# ------------------------------------------------------------ UTF-8

def _valid_prefixes() -> frozenset:
    out = set()
    for cp in range(0x80, 0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        enc = chr(cp).encode()
        for j in range(1, len(enc)):
            out.add(enc[:j])
    return frozenset(out)


PREFIXES = _valid_prefixes()


def viable(prefix: bytes) -> bool:
    """Can some continuation make `prefix` valid UTF-8? (brute force)"""
    for k in range(min(3, len(prefix)) + 1):
        head, tail = prefix[:len(prefix) - k], prefix[len(prefix) - k:]
        if k and tail not in PREFIXES:
            continue
        try:
            head.decode("utf-8")
        except UnicodeDecodeError:
            continue
        return True
    return False


def oracle_failing_fragment(chunks) -> int:
    """Index of the first chunk after which the text cannot become valid;
    len(chunks) if it only fails at the end; -1 if valid."""
    acc = b""
    for i, c in enumerate(chunks):
        acc += c
        if not viable(acc):
            return i
    try:
        acc.decode("utf-8")
    except UnicodeDecodeError:
        return len(chunks)
    return -1


INTERESTING = [b"\x00", b"a", b"\x7f", b"\x80", b"\xbf", b"\xc0", b"\xc1", b"\xc2", b"\xdf",
               b"\xe0", b"\xe1", b"\xec", b"\xed", b"\xee", b"\xef", b"\xf0", b"\xf1", b"\xf3",
               b"\xf4", b"\xf5", b"\xff", b"\x8f", b"\x90", b"\x9f", b"\xa0"]
utf8ish = st.lists(
    st.one_of(st.text(max_size=6).map(str.encode), st.sampled_from(INTERESTING),
              st.binary(max_size=4)),
    max_size=12,
).map(b"".join)


@st.composite
def split_bytes(draw):
    data = draw(utf8ish)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


@SETTINGS
@given(split_bytes())
def test_utf8_validator_fails_at_the_earliest_fragment(chunks):
    assert _utf8_check(chunks) == oracle_failing_fragment(chunks)


@SETTINGS
@given(split_bytes())
def test_parser_fails_text_at_the_earliest_fragment(chunks):
    expected = oracle_failing_fragment(chunks)
    p = FrameParser()
    for i, c in enumerate(chunks):
        p.feed(masked(1 if i == 0 else 0, c, fin=i == len(chunks) - 1))
        try:
            ev = p.next_event()
        except WebSocketError as exc:
            assert exc.code == 1007
            # A single-frame message is checked as a whole (fast path).
            assert i == min(expected, len(chunks) - 1)
            return
        if i < len(chunks) - 1:
            assert ev is None
    assert expected == -1
    assert ev == TextMessage(b"".join(chunks).decode())


@SETTINGS
@given(split_bytes(), st.booleans())
def test_text_fails_at_the_read_that_breaks_it(chunks, fragmented):
    # One frame (or a first empty fragment, then one continuation frame)
    # arriving in pieces: Autobahn 6.4.3/6.4.4 want the failure at the piece
    # that brings the bad byte, before the frame ends.
    expected = oracle_failing_fragment(chunks)
    payload = b"".join(chunks)
    head = masked(1, b"", fin=False) if fragmented else b""
    frame = masked(0 if fragmented else 1, payload)
    header_len = len(frame) - len(payload)
    p = FrameParser()
    p.feed(head + frame[:header_len])
    ev = p.next_event()
    if not payload:
        assert ev == TextMessage("")
        return
    assert ev is None
    at, got = header_len, None
    # The frame ends with its last byte: a failure "at the end" comes there.
    last = max(i for i, c in enumerate(chunks) if c)
    for i, c in enumerate(chunks):
        p.feed(frame[at:at + len(c)])
        at += len(c)
        try:
            got = p.next_event() or got
        except WebSocketError as exc:
            assert exc.code == 1007
            assert i == min(expected, last)
            return
    assert expected == -1
    assert got == TextMessage(payload.decode())


def test_utf8_known_cases():
    assert _utf8_check([b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"]) == -1
    assert _utf8_check([b"\xce\xba\xe1", b"\xbd\xb9"]) == -1
    assert _utf8_check([b"ok", b"\xed\xa0\x80", b"more"]) == 1        # surrogate
    assert _utf8_check([b"\xf4\x90\x80\x80"]) == 0                     # > U+10FFFF
    assert _utf8_check([b"\xe0", b"\x80"]) == 1                        # overlong
    assert _utf8_check([b"abc\xe1\xbd"]) == 1                          # truncated at the end
    assert _utf8_check([b"a" * 100 + b"\x80"]) == 0


# ------------------------------------------------------------ permessage-deflate

def ws_deflate(remote_nct=False, local_nct=False, remote_bits=15, local_bits=15):
    pmd = pytest.importorskip("websockets.extensions.permessage_deflate")
    return pmd.PerMessageDeflate(remote_nct, local_nct, remote_bits, local_bits)


def ws_frame(opcode, data, fin=True, rsv1=False):
    frames = pytest.importorskip("websockets.frames")
    return frames.Frame(frames.Opcode(opcode), data, fin, rsv1)


MESSAGES = [b"hello hello hello", b"", b"x" * 70000, os.urandom(3000), b"hello again hello"]


@pytest.mark.parametrize("bits", [9, 10, 12, 15])
@pytest.mark.parametrize("takeover", [True, False])
def test_inflate_what_websockets_clients_send(bits, takeover):
    client = ws_deflate(remote_nct=False, local_nct=not takeover, local_bits=bits)
    ours = PerMessageDeflate(client_no_context_takeover=not takeover)
    data = b"".join(ws_frame(2, m).serialize(mask=True, extensions=[client]) for m in MESSAGES)
    events, err = parse(data, "random", deflate=ours)
    assert err is None and events == [BytesMessage(m) for m in MESSAGES]


@pytest.mark.parametrize("bits", [9, 11, 13, 15])
@pytest.mark.parametrize("takeover", [True, False])
def test_websockets_clients_inflate_what_we_send(bits, takeover):
    ours = PerMessageDeflate(server_no_context_takeover=not takeover, server_max_window_bits=bits,
                             window_bits=bits, mem_level=9 if bits > 12 else 5)
    client = ws_deflate(remote_nct=not takeover, remote_bits=bits)
    w = FrameWriter(ours)
    for m in MESSAGES:
        frame = w.binary(m)
        assert frame[0] == 0xC2
        got = client.decode(ws_frame(2, _payload(frame), rsv1=True))
        assert got.data == m
    t = w.text("sn\u00f8")
    assert client.decode(ws_frame(1, _payload(t), rsv1=True)).data == "sn\u00f8".encode()


def _payload(frame: bytes) -> bytes:
    n = frame[1] & 0x7F
    return frame[2 + {126: 2, 127: 8}.get(n, 0):]


def test_compressor_window_never_exceeds_the_agreed_bound():
    assert PerMessageDeflate(server_max_window_bits=10).window_bits == 10
    assert PerMessageDeflate(window_bits=15).window_bits == 15
    _, ext = PerMessageDeflate.negotiate("permessage-deflate; server_max_window_bits=9",
                                         window_bits=14, mem_level=8, level=1)
    assert (ext.window_bits, ext.mem_level, ext.level) == (9, 8, 1)
    # A 9-bit client window inflates it: no back-reference reaches further.
    msg = os.urandom(300) * 20
    client = zlib.decompressobj(-9)
    assert client.decompress(ext.compress(msg) + b"\x00\x00\xff\xff") == msg
    for bad in ({"window_bits": 8}, {"mem_level": 0}, {"level": 10},
                {"server_max_window_bits": 8}, {"client_max_window_bits": 16}):
        with pytest.raises(ValueError):
            PerMessageDeflate(**bad)


def test_round_trip_with_context_takeover_shrinks_repeats():
    server = PerMessageDeflate()
    msg = os.urandom(200)
    first, second = server.compress(msg), server.compress(msg)
    assert len(second) < len(first) // 4      # the window remembers the first
    client = zlib.decompressobj(-15)
    for z in (first, second):
        assert client.decompress(z + b"\x00\x00\xff\xff") == msg
    fresh = PerMessageDeflate(server_no_context_takeover=True)
    assert fresh.compress(msg) == fresh.compress(msg)


@pytest.mark.parametrize("how", SPLITS)
def test_fragmented_compressed_text(how):
    comp = zlib.compressobj(9, zlib.DEFLATED, -10)
    text = "\u017c\u00f3\u0142w " * 50
    z = comp.compress(text.encode()) + comp.flush(zlib.Z_SYNC_FLUSH)
    z = z[:-4]
    cuts = [0, 3, 4, len(z) // 2, len(z)]
    data = b"".join(
        masked(1 if i == 0 else 0, z[a:b], fin=b == len(z), rsv1=i == 0)
        for i, (a, b) in enumerate(pairwise(cuts))
    )
    events, err = parse(data + masked(2, b"plain"), how if how != "bytewise" else "random",
                        deflate=PerMessageDeflate())
    assert err is None and events == [TextMessage(text), BytesMessage(b"plain")]


def test_compressed_invalid_utf8_and_corrupt_data():
    z = PerMessageDeflate().compress(b"ok \xed\xa0\x80")
    assert error_code(masked(1, z, rsv1=True), deflate=PerMessageDeflate()) == 1007
    assert error_code(masked(2, b"\xff\xff\xff\xff", rsv1=True), deflate=PerMessageDeflate()) == 1007


def test_empty_compressed_message():
    z = PerMessageDeflate().compress(b"")
    assert z == b"\x00"      # RFC 7692 §7.2.3.6
    events, err = parse(masked(1, z, rsv1=True), deflate=PerMessageDeflate())
    assert err is None and events == [TextMessage("")]


def test_decompression_bomb_is_bounded():
    bomb_src = b"\x00" * (64 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    z = (comp.compress(bomb_src) + comp.flush(zlib.Z_SYNC_FLUSH))[:-4]
    del bomb_src
    assert len(z) < 100_000
    with pytest.raises(WebSocketError) as info:
        PerMessageDeflate().decompress(z, 1 << 20)
    assert info.value.code == 1009
    assert error_code(masked(2, z, rsv1=True), max_size=1 << 20, deflate=PerMessageDeflate()) == 1009
    # ... also when the bomb goes off in a later fragment.
    data = masked(2, z[:10], fin=False, rsv1=True) + masked(0, z[10:])
    assert error_code(data, max_size=1 << 20, deflate=PerMessageDeflate()) == 1009


# ------------------------------------------------------------ negotiation

@pytest.mark.parametrize("offer, response", [
    ("permessage-deflate", "permessage-deflate"),
    ("permessage-deflate; client_max_window_bits", "permessage-deflate"),
    ("x-webkit-deflate-frame, permessage-deflate", "permessage-deflate"),
    ("permessage-deflate; server_no_context_takeover; client_no_context_takeover",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    ("permessage-deflate; server_max_window_bits=10",
     "permessage-deflate; server_max_window_bits=10"),
    ('permessage-deflate; server_max_window_bits="12"',
     "permessage-deflate; server_max_window_bits=12"),
    ("PerMessage-Deflate ;  Client_Max_Window_Bits = 9", "permessage-deflate"),
    # the first acceptable offer wins; unacceptable ones are skipped
    ("permessage-deflate; server_max_window_bits=8, permessage-deflate; client_no_context_takeover",
     "permessage-deflate; client_no_context_takeover"),
    ("permessage-deflate; foo=1, permessage-deflate", "permessage-deflate"),
    ("permessage-deflate; server_no_context_takeover; server_no_context_takeover,"
     " permessage-deflate; server_max_window_bits=15",
     "permessage-deflate; server_max_window_bits=15"),
    (" , permessage-deflate ,, ", "permessage-deflate"),
    # declined
    (None, None),
    ("", None),
    ("x-webkit-deflate-frame", None),
    ("permessage-deflate; server_max_window_bits", None),
    ("permessage-deflate; server_max_window_bits=16", None),
    ("permessage-deflate; server_max_window_bits=010", None),
    ("permessage-deflate; server_max_window_bits=8", None),
    ("permessage-deflate; client_max_window_bits=7", None),
    ("permessage-deflate; client_max_window_bits=", None),
    ("permessage-deflate; server_no_context_takeover=1", None),
    ("permessage-deflate; client_no_context_takeover; client_no_context_takeover", None),
    ("permessage-deflate; unknown", None),
    # malformed headers: declined as a whole
    ("permessage-deflate; server_max_window_bits=\"10", None),
    ('permessage-deflate; server_max_window_bits="1 0"', None),
    ("permessage-deflate;", None),
    ("permessage-deflate client_no_context_takeover", None),
    ("permessage-deflate; client_max_window_bits=10 11", None),
    ("permessage-deflate, @", None),
    ("permessage-deflat\u00e9", None),
])
def test_negotiate(offer, response):
    result = PerMessageDeflate.negotiate(offer)
    if response is None:
        assert result is None
    else:
        assert result is not None and result[0] == response
        assert isinstance(result[1], PerMessageDeflate)


def test_negotiate_parameters_reach_the_instance():
    header, ext = PerMessageDeflate.negotiate(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
        " server_max_window_bits=11")
    assert ext.server_no_context_takeover and ext.client_no_context_takeover
    assert ext.server_max_window_bits == 11
    assert PerMessageDeflate.negotiate("permessage-deflate", enabled=False) is None
    assert PerMessageDeflate.negotiate(b"permessage-deflate")[0] == "permessage-deflate"


def test_negotiated_response_is_accepted_by_websockets():
    pmd = pytest.importorskip("websockets.extensions.permessage_deflate")
    from websockets.headers import parse_extension

    factory = pmd.ClientPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True,
        server_max_window_bits=12, client_max_window_bits=True)
    offer = ", ".join(
        "; ".join([name] + [k if v is None else f"{k}={v}" for k, v in params])
        for name, params in [(factory.name, factory.get_request_params())])
    header, ours = PerMessageDeflate.negotiate(offer)
    [(name, params)] = parse_extension(header)
    client = factory.process_response_params(params, [])
    w = FrameWriter(ours)
    for m in MESSAGES:
        assert client.decode(ws_frame(2, _payload(w.binary(m)), rsv1=True)).data == m
    data = b"".join(ws_frame(2, m).serialize(mask=True, extensions=[client]) for m in MESSAGES)
    assert parse(data, "random", deflate=ours) == ([BytesMessage(m) for m in MESSAGES], None)


def test_parse_extensions_unquotes():
    assert _parse_extensions('a; b="1"; c, d') == [("a", [("b", "1"), ("c", None)]), ("d", [])]


# ------------------------------------------------------------ oracles

@st.composite
def message_streams(draw):
    """Messages, each cut into fragments, with control frames in between."""
    out = []
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.booleans()):
            msg = draw(st.text(max_size=40))
            raw, opcode = msg.encode(), 1
        else:
            msg = draw(st.binary(max_size=300))
            raw, opcode = msg, 2
        cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=3)))
        bounds = [0, *cuts, len(raw)]
        frags = [raw[a:b] for a, b in pairwise(bounds)]
        pings = [draw(st.binary(max_size=125)) if draw(st.booleans()) else None for _ in frags]
        out.append((opcode, msg, frags, pings))
    return out


@SETTINGS
@given(message_streams(), st.integers(0, 2**32), st.randoms(use_true_random=False))
def test_random_streams_against_wsproto(stream, seed, rng):
    wsproto_fp = pytest.importorskip("wsproto.frame_protocol")
    client = wsproto_fp.FrameProtocol(client=True, extensions=[])
    data, expected = b"", []
    for opcode, msg, frags, pings in stream:
        for i, (frag, ping) in enumerate(zip(frags, pings, strict=True)):
            data += masked(opcode if i == 0 else 0, frag, fin=i == len(frags) - 1,
                           key=rng.randbytes(4))
            if ping is not None:
                data += client.ping(ping)
                expected.append(Ping(ping))
        expected.append(TextMessage(msg) if opcode == 1 else BytesMessage(msg))
    # A ping between fragments comes out before the message it interrupts:
    # compare messages in order and pings in order.
    events, err = parse(data, "random", seed=seed)
    assert err is None
    msgs = [e for e in events if not isinstance(e, Ping)]
    assert msgs == [e for e in expected if not isinstance(e, Ping)]
    assert [e for e in events if isinstance(e, Ping)] == [e for e in expected if isinstance(e, Ping)]
    # And wsproto, as a server, reads the same bytes to the same payloads.
    server = wsproto_fp.FrameProtocol(client=False, extensions=[])
    server.receive_bytes(data)
    got = [f for f in server.received_frames()]
    assert b"".join(f.payload if isinstance(f.payload, bytes) else f.payload.encode()
                    for f in got if f.opcode.value in (0, 1, 2)) == b"".join(
        (m.data.encode() if isinstance(m, TextMessage) else m.data) for m in msgs)


@SETTINGS
@given(st.lists(st.one_of(st.text(max_size=50), st.binary(max_size=200)), max_size=6))
def test_writer_output_read_by_websockets(messages):
    frames = pytest.importorskip("websockets.frames")
    from websockets.streams import StreamReader

    w = FrameWriter()
    reader = StreamReader()
    for m in messages:
        reader.feed_data(w.text(m) if isinstance(m, str) else w.binary(m))
    for m in messages:
        gen = frames.Frame.parse(reader.read_exact, mask=False)
        with pytest.raises(StopIteration) as stop:
            next(gen)
        frame = stop.value.value
        assert frame.fin
        assert frame.data == (m.encode() if isinstance(m, str) else m)
        assert frame.opcode == (frames.Opcode.TEXT if isinstance(m, str) else frames.Opcode.BINARY)


@SETTINGS
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=400), st.lists(st.integers(0, 400),
                                                                           max_size=3)),
                min_size=1, max_size=5),
       st.booleans(), st.integers(0, 2**32))
def test_random_compressed_streams(messages, takeover, seed):
    """Deflated messages (context kept or not) cut into fragments anywhere in
    their compressed bytes, with pings between them, split anywhere."""
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    data, expected = b"", []
    for as_text, raw, cuts in messages:
        if as_text:
            raw = raw.decode("latin-1").encode()      # any bytes -> valid UTF-8
        if not takeover:
            comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        z = (comp.compress(raw) + comp.flush(zlib.Z_SYNC_FLUSH))[:-4]
        bounds = [0, *sorted(c for c in cuts if c <= len(z)), len(z)]
        for i, (a, b) in enumerate(pairwise(bounds)):
            last = i == len(bounds) - 2
            data += masked((1 if as_text else 2) if i == 0 else 0, z[a:b], fin=last, rsv1=i == 0)
            if not last:
                data += masked(9, b"%d" % i)
                expected.append(Ping(b"%d" % i))
        expected.append(TextMessage(raw.decode()) if as_text else BytesMessage(raw))
    ext = PerMessageDeflate(client_no_context_takeover=not takeover)
    assert parse(data, "random", seed=seed, deflate=ext) == (expected, None)


# -- reading into the parser (the BufferedProtocol path) --

def read_into(p: FrameParser, data: bytes, step: int):
    """Deliver `data` the way a transport does through get_buffer(): at most
    `step` bytes (and never more than offered) per read."""
    events = []
    pos = 0
    while pos < len(data):
        view = p.get_buffer(-1)
        n = min(step, len(view), len(data) - pos)
        view[:n] = data[pos:pos + n]
        p.buffer_updated(n)       # as uvloop does: while the view is held
        view.release()
        pos += n
        while (ev := p.next_event()) is not None:
            events.append(ev)
    return events


@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_get_buffer_reads_frames(step):
    big = os.urandom(200_000)
    data = (masked(2, big) + masked(1, "héllo".encode()) + masked(9, b"p")
            + masked(2, b"x", fin=False) + masked(0, b"y") + masked(2, b""))
    p = FrameParser()
    assert read_into(p, data, step) == [BytesMessage(big), TextMessage("héllo"), Ping(b"p"),
                                        BytesMessage(b"xy"), BytesMessage(b"")]
    assert p.buffered == 0


def test_get_buffer_room():
    p = FrameParser()
    assert len(p.get_buffer(-1)) >= 65536
    # A frame announcing 200 000 bytes: room for its rest (and more) at once,
    # bounded by 256 KiB whatever a header announces.
    head = masked(2, b"\0" * 200_000)[:14]
    read_into(p, head, 14)
    assert 200_000 <= len(p.get_buffer(-1)) <= 262144 + 65536
    p2 = FrameParser(max_size=None)
    read_into(p2, b"\x82\xff" + (1 << 40).to_bytes(8, "big") + KEY, 14)
    assert len(p2.get_buffer(-1)) <= 262144 + 65536


def test_get_buffer_guards_the_view():
    p = FrameParser()
    view = p.get_buffer(-1)
    with pytest.raises(BufferError):
        p.feed(b"x")
    with pytest.raises(BufferError):
        p.get_buffer(-1)
    with pytest.raises(ValueError):
        p.buffer_updated(len(view) + 1)
    view.release()
    p.feed(masked(2, b"ok"))
    assert p.next_event() == BytesMessage(b"ok")


def test_get_buffer_after_close_discards():
    p = FrameParser()
    read_into(p, masked(8, b"\x03\xe8"), 1 << 20)
    with memoryview(p.get_buffer(-1)) as view:     # a scratch area now
        view[:5] = b"junk!"
        p.buffer_updated(5)
    assert p.buffered == 0 and p.next_event() is None


@pytest.mark.parametrize("n", [0, 125, 126, 65535, 65536, 1 << 20])
def test_binary_header(n):
    data = os.urandom(n)
    w = FrameWriter()
    assert w.binary_header(n) + data == w.binary(data)
    # Also valid with deflate negotiated: no RSV1, an uncompressed message.
    assert FrameWriter(PerMessageDeflate()).binary_header(n) == w.binary_header(n)
    p = FrameParser(client_mode=True, max_size=None, deflate=PerMessageDeflate())
    p.feed(w.binary_header(n) + data)
    assert p.next_event() == BytesMessage(data)
