"""JsonBuilder: byte-for-byte agreement with orjson (and json.dumps where
orjson stops at 64-bit integers), float round-trips, and every misuse."""

from __future__ import annotations

import enum
import json
import math
import sys
import threading

import h11
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fasterapi._response import JsonBuilder, ResponseBuilder


def build(obj) -> bytes:
    j = JsonBuilder()
    j.value(obj)
    return j.getvalue()


def stdlib(obj) -> bytes:
    # json.dumps in its compact, non-ASCII-preserving form writes the same
    # escapes as RFC 8259's minimum (lower-case \u00XX, short forms).
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# --- round trips ----------------------------------------------------------

DOCS = [
    {},
    [],
    "",
    0,
    None,
    True,
    {"a": 1, "b": [1, 2, {"c": None}], "d": "x"},
    [[[[]]], {}, [{}], {"k": []}],
    {"emoji": "\U0001f600", "accents": "caf\xe9", "cjk": "\u4e2d\u6587", "sep": "\u2028\u2029"},
    {"ctl": "".join(chr(c) for c in range(32)) + '"\\/\x7f'},
    [-(2**63), 2**63 - 1, 2**64 - 1, 2**64, -(2**64) - 1, 10**100],
    [0.0, -0.0, 1.0, 1.5, -2.25, 1e16, 1e-7, 5e-324, 1.7976931348623157e308, 0.1 + 0.2],
]


@pytest.mark.parametrize("doc", DOCS)
def test_round_trip(doc):
    out = build(doc)
    assert json.loads(out) == doc
    assert out == stdlib(doc)


def test_piecewise_api():
    j = JsonBuilder()
    j.begin_object()
    j.key("name")
    j.string_value("fasterapi")
    j.key("n")
    j.int_value(3)
    j.key("pi")
    j.float_value(3.14)
    j.key("ok")
    j.bool_value(True)
    j.key("no")
    j.bool_value(False)
    j.key("none")
    j.null_value()
    j.key("raw")
    j.raw_value(orjson.dumps({"z": [1]}))
    j.key("list")
    j.begin_array()
    j.int_value(1)
    j.begin_object()
    j.end_object()
    j.begin_array()
    j.end_array()
    j.value({"x": (1, 2)})
    j.end_array()
    j.end_object()
    assert j.complete
    assert j.getvalue() == (
        b'{"name":"fasterapi","n":3,"pi":3.14,"ok":true,"no":false,"none":null,'
        b'"raw":{"z":[1]},"list":[1,{},[],{"x":[1,2]}]}'
    )


def test_exact_escapes():
    assert build("\b\t\n\f\r") == b'"\\b\\t\\n\\f\\r"'
    assert build("\x00\x01\x1f") == b'"\\u0000\\u0001\\u001f"'
    assert build('"\\') == b'"\\"\\\\"'
    assert build("/\x7f\xe9") == b'"/\x7f\xc3\xa9"'
    assert build("\U0010ffff") == "\"\U0010ffff\"".encode()


def test_reset_and_reuse():
    j = JsonBuilder()
    j.value([1, 2])
    assert j.getvalue() == b"[1,2]" and len(j) == 5
    j.reset()
    assert len(j) == 0 and not j.complete
    j.value("again")
    assert j.getvalue() == b'"again"'


def test_growth_past_inline_buffer_and_shrink():
    big = {f"k{i}": "v" * i for i in range(400)}
    assert build(big) == orjson.dumps(big)
    j = JsonBuilder()
    j.value("x" * 3_000_000)
    assert len(j.getvalue()) == 3_000_002
    j.reset()
    j.value(1)
    assert j.getvalue() == b"1"


def test_long_strings_take_the_nogil_path():
    # >= 64 KiB: escaped with the GIL released; the result must not change.
    s = ("a\"\\\n\x01\xe9\U0001f600" * 20000)
    assert len(s.encode()) >= 65536
    assert build(s) == orjson.dumps(s)
    assert build(["x" * 70000]) == orjson.dumps(["x" * 70000])


def test_threads_share_nothing_corrupt():
    # Two threads each with its own builder, big strings releasing the GIL:
    # both results stay exact.
    s = "q\n" * 50000
    want = orjson.dumps([s, s])
    results = []

    def work():
        for _ in range(5):
            j = JsonBuilder()
            j.value([s, s])
            results.append(j.getvalue() == want)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 10


def test_subclasses():
    class Color(enum.IntEnum):
        RED = 1

    class S(str):
        def __str__(self):
            return "wrong"

    class F(float):
        pass

    class BigInt(int):
        def __str__(self):
            return "wrong"

    assert build([Color.RED, S("s"), F(2.5), BigInt(2**70), (1,)]) == (
        b'[1,"s",2.5,1180591620717411303424,[1]]'
    )
    assert build([True, False, None]) == b"[true,false,null]"


# --- property tests against orjson ----------------------------------------

# orjson's integer range is [-2**63, 2**64 - 1]; beyond it json.dumps is the
# oracle (tested below).
ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
scalars = st.one_of(st.text(), ints, st.booleans(), st.none())
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_strings_match_orjson(s):
    assert build(s) == orjson.dumps(s)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x7F)))
def test_ascii_and_controls_match_orjson(s):
    assert build(s) == orjson.dumps(s)


@settings(max_examples=300, deadline=None)
@given(ints)
def test_ints_match_orjson(n):
    assert build(n) == orjson.dumps(n)
    j = JsonBuilder()
    j.int_value(n)
    assert j.getvalue() == orjson.dumps(n)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(min_value=2**64), st.integers(max_value=-(2**63) - 1)))
def test_ints_beyond_64_bits_match_stdlib(n):
    assert build(n) == str(n).encode()


@settings(max_examples=300, deadline=None)
@given(trees)
def test_trees_match_orjson(doc):
    out = build(doc)
    assert out == orjson.dumps(doc)
    assert json.loads(out) == doc


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip_exactly(x):
    out = build(x)
    back = json.loads(out)
    assert isinstance(back, float)
    assert back == x and math.copysign(1, back) == math.copysign(1, x)
    assert out == repr(x).encode()


# --- refusals -------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_refused(bad):
    j = JsonBuilder()
    with pytest.raises(ValueError, match="NaN or Infinity"):
        j.float_value(bad)
    with pytest.raises(ValueError, match="NaN or Infinity"):
        j.value([bad])


@pytest.mark.parametrize("s", ["\ud800", "a\udfffb", "\udc00\ud800"])
def test_lone_surrogates_refused(s):
    j = JsonBuilder()
    with pytest.raises(UnicodeEncodeError):
        j.string_value(s)
    assert not j.complete
    j.string_value("ok")  # the refused string changed nothing
    assert j.getvalue() == b'"ok"'
    j = JsonBuilder()
    j.begin_object()
    with pytest.raises(UnicodeEncodeError):
        j.key(s)


def test_value_where_key_is_due():
    j = JsonBuilder()
    j.begin_object()
    with pytest.raises(ValueError, match="key is due"):
        j.int_value(1)
    with pytest.raises(ValueError, match="key is due"):
        j.begin_array()


def test_two_keys_in_a_row():
    j = JsonBuilder()
    j.begin_object()
    j.key("a")
    with pytest.raises(ValueError, match="two keys"):
        j.key("b")


def test_key_outside_object():
    j = JsonBuilder()
    with pytest.raises(ValueError, match="outside an object"):
        j.key("a")
    j.begin_array()
    with pytest.raises(ValueError, match="outside an object"):
        j.key("a")


def test_unbalanced_and_mismatched_ends():
    j = JsonBuilder()
    with pytest.raises(ValueError, match="no open container"):
        j.end_object()
    with pytest.raises(ValueError, match="no open container"):
        j.end_array()
    j.begin_array()
    with pytest.raises(ValueError, match="open array"):
        j.end_object()
    j.begin_object()
    with pytest.raises(ValueError, match="open object"):
        j.end_array()
    j.key("k")
    with pytest.raises(ValueError, match="value is missing"):
        j.end_object()


def test_second_root_value_refused():
    j = JsonBuilder()
    j.int_value(1)
    with pytest.raises(ValueError, match="root value"):
        j.int_value(2)
    with pytest.raises(ValueError, match="root value"):
        j.begin_object()


def test_getvalue_on_incomplete_document():
    j = JsonBuilder()
    with pytest.raises(ValueError, match="no value"):
        j.getvalue()
    j.begin_object()
    j.key("a")
    j.begin_array()
    with pytest.raises(ValueError, match="2 container"):
        j.getvalue()


def test_depth_limit_and_cycles():
    j = JsonBuilder()
    for _ in range(512):
        j.begin_array()
    with pytest.raises(ValueError, match="512"):
        j.begin_array()
    for _ in range(512):
        j.end_array()
    assert j.getvalue() == b"[" * 512 + b"]" * 512
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="512"):
        JsonBuilder().value(cyclic)


def test_type_errors():
    j = JsonBuilder()
    with pytest.raises(TypeError, match="not JSON serializable"):
        j.value({1, 2})
    with pytest.raises(TypeError, match="not JSON serializable"):
        JsonBuilder().value(b"bytes")
    with pytest.raises(TypeError, match="keys must be str"):
        JsonBuilder().value({1: "a"})
    with pytest.raises(TypeError):
        JsonBuilder().int_value(1.5)
    with pytest.raises(TypeError):
        JsonBuilder().string_value(b"x")
    with pytest.raises(TypeError):
        JsonBuilder().float_value("1.0")
    j = JsonBuilder()
    j.begin_object()
    with pytest.raises(TypeError):
        j.key(5)


def test_int_digit_limit_is_kept():
    # CPython's int->str limit (a DoS guard) applies to huge ints.
    limit = sys.get_int_max_str_digits()
    if limit == 0:
        pytest.skip("int max str digits disabled")
    with pytest.raises(ValueError):
        JsonBuilder().int_value(10 ** (limit + 10))


# --- writing into a ResponseBuilder ---------------------------------------


def test_json_into_response_body():
    rb = ResponseBuilder()
    rb.status(200)
    rb.content_type(b"application/json")
    j = JsonBuilder(rb)
    doc = {"hello": "world", "n": [1, 2.5, None], "s": "\u00e9\n"}
    j.value(doc)
    assert j.complete
    out = rb.getvalue()
    body = orjson.dumps(doc)
    assert out == (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % len(body) + body
    )
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.receive_data(out)
    assert isinstance(conn.next_event(), h11.Response)
    assert json.loads(conn.next_event().data) == doc
    with pytest.raises(TypeError, match="ResponseBuilder"):
        j.getvalue()


def test_json_into_response_big_and_mixed_with_body():
    rb = ResponseBuilder(0)
    rb.status(200)
    rb.body(b"")
    j = JsonBuilder(rb)
    doc = ["x\n" * 40000, list(range(1000))]
    j.value(doc)
    out = rb.getvalue()
    assert out.endswith(b"\r\n\r\n" + orjson.dumps(doc))
    assert rb.body_length == len(orjson.dumps(doc))


def test_json_target_respects_export_guard_and_framing():
    rb = ResponseBuilder()
    rb.status(200)
    j = JsonBuilder(rb)
    j.begin_array()
    view = rb.finalize()
    with pytest.raises(BufferError):
        j.int_value(1)
    view.release()
    with pytest.raises(ValueError, match="complete"):
        j.int_value(1)
    rb.reset()
    rb.status(200)
    rb.chunk(b"")
    with pytest.raises(ValueError, match="chunked"):
        JsonBuilder(rb).value(1)
    rb.reset()
    rb.status(204)
    with pytest.raises(ValueError, match="no body"):
        JsonBuilder(rb).value(1)
    with pytest.raises(TypeError):
        JsonBuilder(b"not a builder")


def test_json_target_export_guard_while_view_alive():
    rb = ResponseBuilder()
    rb.status(200)
    rb.header(b"content-length", b"7")
    view = rb.flush()
    j = JsonBuilder(rb)
    with pytest.raises(BufferError):
        j.value([1, 2, 3])
    view.release()
    j.reset()
    j.value([1, 2, 3])
    with rb.finalize() as v:
        assert bytes(v) == b"[1,2,3]"
