"""Check module sizes against STYLE.md: 500 lines is a hard stop; 300 and 6k are targets.

A module over the hard stop fails the check. Modules over 300 lines and a package
over 6,000 lines are reported, so the figure stays visible in every CI log, but
do not fail: STYLE.md states those two as targets.
"""

from __future__ import annotations

import sys
from pathlib import Path

HARD_LIMIT = 500
MODULE_TARGET = 300
PACKAGE_TARGET = 6000


def main() -> int:
    files = sorted(Path("src/embrec").rglob("*.py"))
    counts = {f: len(f.read_text().splitlines()) for f in files}
    too_long = [f for f, n in counts.items() if n > HARD_LIMIT]
    for f in too_long:
        print(f"error: {f}: {counts[f]} lines (hard stop {HARD_LIMIT})")
    for f, n in counts.items():
        if MODULE_TARGET < n <= HARD_LIMIT:
            print(f"note: {f}: {n} lines (target {MODULE_TARGET})")
    total = sum(counts.values())
    if total > PACKAGE_TARGET:
        print(f"note: package: {total} lines (target {PACKAGE_TARGET})")
    print(f"linecount: {len(files)} modules, {total} lines")
    return 1 if too_long else 0


if __name__ == "__main__":
    sys.exit(main())
