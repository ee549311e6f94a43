"""Micro-benchmarks of the `fasterapi.fast` primitives, in one table.

Runs each section's ``run()`` (bench_queue, bench_pool, bench_response, and
bench_parser when present), prints one table, and writes it into
bench/RESULTS.md between the ``primitives`` markers with the date and machine,
beside the design document's claims.  Numbers are medians of repeats; the
machine is shared and noisy, so read ratios, not absolutes.

    python bench/primitives.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SECTIONS = ["bench_queue", "bench_pool", "bench_response", "bench_parser", "bench_websocket_frames"]
BEGIN, END = "<!-- primitives:begin -->", "<!-- primitives:end -->"


def machine() -> str:
    """One line naming the CPU, the Python and the date, for the results file."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}; {platform.system()} {platform.machine()}; Python {platform.python_version()}"


def fmt(value) -> str:
    """Numbers to three significant figures, with thousands separators when large."""
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"
    return str(value)


def table(rows: list[dict]) -> str:
    """A Markdown table of benchmark rows."""
    out = ["| section | measurement | value | unit | note |", "|---|---|---:|---|---|"]
    for r in rows:
        out.append(f"| {r['section']} | {r['name']} | {fmt(r['value'])} | {r['unit']} "
                   f"| {r.get('note', '')} |")
    return "\n".join(out)


def write_section(text: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace (or append) the marked section of bench/RESULTS.md, keeping the rest."""
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        _, tail = rest.split(end, 1)
        new = head + block + tail
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE))
    rows: list[dict] = []
    for name in SECTIONS:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            print(f"skipping {name}: {exc}", file=sys.stderr)
            continue
        rows.extend(module.run(quick=args.quick))
    text = table(rows)
    print(text)
    if not args.no_write:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        write_section(
            f"## Primitives ({stamp})\n\nMachine: {machine()}\n\n"
            f"Command: `python bench/primitives.py{' --quick' if args.quick else ''}`\n\n{text}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
