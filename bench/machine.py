"""How fast this machine's CPU is at the moment a benchmark runs, as one figure to print beside it.

The development VM's speed moves between days by up to three times on the same code (its
HTTP floor, ``GET /health``, ran at 911-1,820 req/s one morning and 2,833-3,219 the same
afternoon; docs/PERFORMANCE.md). A benchmark's figures are compared with its floors measured in
the same run; this line lets figures of different days be compared at all: the time of a
fixed piece of pure-Python work (a loop summing 5,000,000 integers, best of three), which
depends on nothing but the CPU the process gets.

    .venv/bin/python bench/machine.py
"""

from __future__ import annotations

import time

LOOP = 5_000_000


def loop_ms(repeats: int = 3) -> float:
    """The best of ``repeats`` timings (ms) of the reference loop."""
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        total = 0
        for i in range(LOOP):
            total += i
        best = min(best, (time.perf_counter() - began) * 1000)
        assert total == LOOP * (LOOP - 1) // 2
    return best


def speed_line() -> str:
    return f"machine speed: reference loop ({LOOP:,} additions in Python) {loop_ms():.0f} ms, best of 3 (lower is faster)"


if __name__ == "__main__":
    print(speed_line())
