"""Fail when a module passes the size budget of STYLE.md (500 lines hard stop, 6k in all)."""

from __future__ import annotations

import sys
from pathlib import Path

HARD_LIMIT = 500
PACKAGE_LIMIT = 6000


def main() -> int:
    files = sorted(Path("src/embrec").rglob("*.py"))
    counts = {f: len(f.read_text().splitlines()) for f in files}
    too_long = [f"{f}: {n} lines (limit {HARD_LIMIT})" for f, n in counts.items() if n > HARD_LIMIT]
    total = sum(counts.values())
    for line in too_long:
        print(line)
    if total > PACKAGE_LIMIT:
        print(f"package: {total} lines (limit {PACKAGE_LIMIT})")
    print(f"linecount: {len(files)} modules, {total} lines")
    return 1 if too_long or total > PACKAGE_LIMIT else 0


if __name__ == "__main__":
    sys.exit(main())
