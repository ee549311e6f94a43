"""Micro-benchmarks of fasterapi._websocket against the websockets library's frame code.

Per message, for a 16-byte and a 64 KiB binary message, plain and with
permessage-deflate:

- parse+unmask: a masked client frame fed to ``FrameParser`` and read back with
  ``next_event()``, against ``websockets.frames.Frame.parse`` over its
  ``StreamReader`` (which unmasks with websockets' C ``apply_mask``);
- build: a server frame from ``FrameWriter.binary``, against
  ``Frame(...).serialize(mask=False)``;
- unmask alone: ``apply_mask`` against ``websockets.speedups.apply_mask``.

Deflate runs without context takeover on both sides, so every message is
compressed alone (a fresh compressor each time, 12-bit window, memLevel 5 on
both sides) and the same frame can be parsed again and again; the
payload is a JSON-like text (compressible) sent as binary, so no UTF-8 check
is counted on either side.  Numbers are medians of several repeats from
``time.perf_counter_ns``; the machine is shared, read ratios, not absolutes.
``run()`` follows the other bench/bench_*.py files; run this file for this
section alone:

    python bench/bench_websocket_frames.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import fasterapi  # noqa: F401
except ImportError:  # run from a checkout: use the in-place build
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import main, per_op_or_skip, row

from fasterapi._websocket import (
    FrameParser,
    FrameWriter,
    PerMessageDeflate,
    apply_mask,
    build_frame,
)

SECTION = "websocket"


def _import_websockets() -> None:
    """Import websockets with bench/ off sys.path: bench/http.py would shadow
    the stdlib http package that websockets imports."""
    here = Path(__file__).resolve().parent
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    try:
        import websockets.extensions.permessage_deflate
        import websockets.frames
        import websockets.speedups
        import websockets.streams  # noqa: F401
    except ImportError:
        pass    # the websockets rows say "skipped"
    finally:
        sys.path[:] = saved


_import_websockets()
KEY = b"\x12\x34\x56\x78"


def _payload(size: int) -> bytes:
    unit = b'{"id": 1234, "name": "fasterapi", "tags": ["asgi", "cython"], "ok": true}\n'
    return (unit * (size // len(unit) + 1))[:size]


def _row(name: str, value: float, note: str = "") -> dict:
    return row(SECTION, name, value, "ns/message", note)


# ---- fasterapi ---------------------------------------------------------------


def _ours_parse(payload: bytes, deflate: bool, n: int):
    if deflate:
        z = PerMessageDeflate(server_no_context_takeover=True).compress(payload)
        frame = build_frame(2, z, rsv1=True, mask=KEY)
        ext = PerMessageDeflate(client_no_context_takeover=True)
    else:
        frame, ext = build_frame(2, payload, mask=KEY), None
    parser = FrameParser(deflate=ext)

    def loop():
        feed, next_event = parser.feed, parser.next_event
        for _ in range(n):
            feed(frame)
            next_event()
    return loop


def _ours_build(payload: bytes, deflate: bool, n: int):
    writer = FrameWriter(PerMessageDeflate(server_no_context_takeover=True) if deflate else None)

    def loop():
        binary = writer.binary
        for _ in range(n):
            binary(payload)
    return loop


def _ours_mask(payload: bytes, n: int):
    def loop():
        for _ in range(n):
            apply_mask(payload, KEY)
    return loop


# ---- websockets --------------------------------------------------------------


def _ws_ext(deflate: bool):
    if not deflate:
        return []
    from websockets.extensions.permessage_deflate import PerMessageDeflate as WsDeflate

    # Server side: remote = client.  No context takeover either way; the
    # compressor sized as ours (12-bit window, memLevel 5: websockets' own
    # server defaults too).
    return [WsDeflate(True, True, 15, 12, {"memLevel": 5})]


def _ws_parse(payload: bytes, deflate: bool, n: int):
    from websockets.frames import Frame, Opcode
    from websockets.streams import StreamReader

    if deflate:
        from websockets.extensions.permessage_deflate import PerMessageDeflate as WsDeflate

        client = [WsDeflate(True, True, 15, 15)]
    else:
        client = []
    frame = Frame(Opcode.BINARY, payload).serialize(mask=True, extensions=client)
    ext = _ws_ext(deflate)
    reader = StreamReader()
    parse = Frame.parse

    def loop():
        for _ in range(n):
            reader.feed_data(frame)
            gen = parse(reader.read_exact, mask=True, max_size=1 << 24, extensions=ext)
            try:
                next(gen)
            except StopIteration:
                pass
    return loop


def _ws_build(payload: bytes, deflate: bool, n: int):
    from websockets.frames import Frame, Opcode

    ext = _ws_ext(deflate)

    def loop():
        for _ in range(n):
            Frame(Opcode.BINARY, payload).serialize(mask=False, extensions=ext)
    return loop


def _ws_mask(payload: bytes, n: int):
    from websockets.speedups import apply_mask as ws_apply_mask

    def loop():
        for _ in range(n):
            ws_apply_mask(payload, KEY)
    return loop


def run(quick: bool = False) -> list[dict]:
    """Rows ``{"section": "websocket", "name", "value", "unit": "ns/message", "note"}``.

    `quick` cuts the message count and repeats about tenfold, for a smoke run.
    """
    repeats = 3 if quick else 7
    rows = []
    for size, label, n in ((16, "16 B", 20_000), (65536, "64 KiB", 400)):
        if quick:
            n //= 10
        payload = _payload(size)
        cases = []
        for deflate in (False, True):
            kind = "deflate" if deflate else "plain"
            cases += [
                (f"parse+unmask {label} {kind}", _ours_parse, _ws_parse, (payload, deflate, n),
                 "feed + next_event" if not deflate else "feed + next_event, inflate"),
                (f"build {label} {kind}", _ours_build, _ws_build, (payload, deflate, n),
                 "server frame, unmasked" if not deflate else "server frame, deflate"),
            ]
        cases.append((f"unmask {label}", _ours_mask, _ws_mask, (payload, n), "copy + XOR"))
        for name, ours, theirs, args, note in cases:
            for who, make in (("fasterapi", ours), ("websockets", theirs)):
                value, skipped = per_op_or_skip(make, args, n, repeats)
                rows.append(_row(f"{name}: {who}", value, skipped or note))
    return rows


if __name__ == "__main__":
    raise SystemExit(main(__doc__, run, "fewer messages and repeats"))
