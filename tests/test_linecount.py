"""scripts/linecount.py: code lines as tinygrad counts them, and the gate's failures."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _linecount() -> ModuleType:
    spec = importlib.util.spec_from_file_location("linecount", ROOT / "scripts" / "linecount.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_code_lines_skip_blanks_comments_and_docstrings() -> None:
    source = '"""Module.\n\nMore."""\n\n# a comment\ndef f(x):\n    """Doc."""\n' \
             '    return (x +  # trailing\n            1)\n'
    assert _linecount().code_lines(source) == 3


def test_a_long_module_needs_a_reason_and_a_large_package_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    linecount = _linecount()
    (tmp_path / "src" / "embrec").mkdir(parents=True)
    (tmp_path / "src" / "embrec" / "big.py").write_text("x = 1\n" * 450)
    monkeypatch.chdir(tmp_path)
    assert linecount.main() == 1
    assert "big.py: 450 lines, over 400 with no reason" in capsys.readouterr().out
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "contributing.md").write_text("| `src/embrec/big.py` | one table |\n")
    assert linecount.main() == 0
    monkeypatch.setattr(linecount, "PACKAGE_TARGET", 300)
    assert linecount.main() == 1
    assert "450 code lines, over 300 by more than 20% (limit 360)" in capsys.readouterr().out

