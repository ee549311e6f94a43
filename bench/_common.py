"""What the micro-benchmark sections share: timing, rows, the standalone table.

Each ``bench_*.py`` section imports this with ``bench/`` on ``sys.path``
(true when it runs as ``python bench/bench_x.py`` and when bench/primitives.py
imports it).  Rows are ``{"section", "name", "value", "unit", "note"}``.
"""

from __future__ import annotations

import argparse
import statistics
import time


def row(section: str, name: str, value: float, unit: str, note: str = "") -> dict:
    """One benchmark row, as bench/primitives.py tabulates it."""
    return {"section": section, "name": name, "value": value, "unit": unit, "note": note}


def median_ns(fn, repeats: int, clock=time.perf_counter_ns) -> float:
    """Median time of `fn()` over `repeats` calls, in nanoseconds of `clock`."""
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def per_op_ns(fn, n: int, repeats: int, clock=time.perf_counter_ns) -> float:
    """Nanoseconds per operation of `fn()`, which does `n` of them: one untimed
    call first (warms caches, interned objects, pools and free lists), then the
    median of `repeats` timed calls, divided by `n`."""
    fn()
    return median_ns(fn, repeats, clock) / n


def per_op_or_skip(make, args: tuple, n: int, repeats: int) -> tuple[float, str | None]:
    """per_op_ns of the loop `make(*args)` builds, and None; or NaN and a
    "skipped: ..." note when `make` raises ImportError (a competitor that is
    not installed)."""
    try:
        loop = make(*args)
    except ImportError as exc:
        return float("nan"), f"skipped: {exc}"
    return per_op_ns(loop, n, repeats), None


def loop_floor(n: int):
    """The Python-level rows' loop shape calling two trivial C builtins: a
    floor, not a correction (the method lookups are bound once in both cases)."""
    f = len  # METH_O, returns a cached small int: nothing allocated

    def go():
        x = ()
        for _ in range(n):
            f(x)
            f(x)

    return go


def fmt_value(value: float) -> str:
    """Three significant figures, or thousands separators when large."""
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"


def print_table(rows: list[dict], value_width: int = 10, unit_width: int = 10,
                fmt=fmt_value) -> None:
    """The rows as aligned plain text: name, value, unit, note."""
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {fmt(r['value']):>{value_width}} "
              f"{r['unit']:<{unit_width}}  {r['note']}")


def arg_parser(doc: str, quick_help: str) -> argparse.ArgumentParser:
    """A section's command line: its docstring's first line and ``--quick``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    return parser


def main(doc: str, run, quick_help: str, argv: list[str] | None = None, **table) -> int:
    """Run one section standalone and print its table (`table`: print_table's
    layout arguments)."""
    args = arg_parser(doc, quick_help).parse_args(argv)
    print_table(run(quick=args.quick), **table)
    return 0
