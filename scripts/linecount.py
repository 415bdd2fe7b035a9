"""Check the package's size against STYLE.md, counting code lines the way tinygrad does.

STYLE.md asks for about 12 k lines for the package and modules of at most 300 lines
(hard stop 500). The package is measured in code lines: lines holding a token of code,
so blank lines, comments and docstrings do not count (tinygrad's ``sz.py``). It fails
when more than 20% over its target. Modules are measured in raw lines: over 500 fails;
over 400 fails unless docs/contributing.md gives the module a reason; over 300 is noted.

Usage: ``python3 scripts/linecount.py`` from the repository root (``scripts/check`` runs it).
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from pathlib import Path

PACKAGE_TARGET = 12_000  # code lines (STYLE.md: "12 k for the package")
PACKAGE_SLACK = 0.20  # fail only beyond the target plus this share
MODULE_TARGET = 300  # raw lines
MODULE_REASON = 400  # raw lines beyond which a module needs a written reason
HARD_LIMIT = 500  # raw lines
REASONS = Path("docs/contributing.md")
CODE_TOKENS = {tokenize.OP, tokenize.NAME, tokenize.NUMBER, tokenize.STRING}
CODE_TOKENS |= {getattr(tokenize, name, tokenize.STRING)  # Python 3.12 splits f-strings
                for name in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")}


def code_lines(source: str) -> int:
    """Lines holding a code token, not counting docstrings (strings standing as statements)."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            docstrings.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in CODE_TOKENS:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


def reasons(path: Path = REASONS) -> dict[str, str]:
    """Module path -> the reason a table row in ``path`` gives for its length."""
    rows = re.findall(r"^\|\s*`(src/embrec/[\w/]+\.py)`\s*\|\s*(.+?)\s*\|\s*$",
                      path.read_text() if path.exists() else "", flags=re.MULTILINE)
    return dict(rows)


def main() -> int:
    files = sorted(Path("src/embrec").rglob("*.py"))
    sources = {f: f.read_text() for f in files}
    raw = {f: len(s.splitlines()) for f, s in sources.items()}
    code = {f: code_lines(s) for f, s in sources.items()}
    given = reasons()
    errors = 0
    for f, n in raw.items():
        if n > HARD_LIMIT:
            print(f"error: {f}: {n} lines (hard stop {HARD_LIMIT})")
            errors += 1
        elif n > MODULE_REASON and str(f) not in given:
            print(f"error: {f}: {n} lines, over {MODULE_REASON} with no reason in {REASONS}")
            errors += 1
        elif n > MODULE_TARGET:
            print(f"note: {f}: {n} lines (target {MODULE_TARGET})")
    for name in sorted(set(given) - {str(f) for f, n in raw.items() if n > MODULE_REASON}):
        print(f"note: {REASONS}: {name} is not over {MODULE_REASON} lines; drop its reason")
    total_raw, total_code = sum(raw.values()), sum(code.values())
    limit = int(PACKAGE_TARGET * (1 + PACKAGE_SLACK))
    if total_code > limit:
        print(f"error: package: {total_code} code lines, over {PACKAGE_TARGET} by more than "
              f"{PACKAGE_SLACK:.0%} (limit {limit})")
        errors += 1
    print(f"linecount: {len(files)} modules, {total_raw} raw lines, {total_code} code lines "
          f"(target {PACKAGE_TARGET}, fails over {limit})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
