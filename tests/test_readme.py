"""The README quickstart runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python quickstart"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EMBREC_HOME", str(tmp_path / "home"))
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "'rmse'" in out
    assert (tmp_path / "runs" / "quickstart" / "weights.safetensors").is_file()


def test_readme_gives_setup_main_and_test_commands() -> None:
    text = README.read_text()
    assert 'pip install -e ".[serve]"' in text
    assert "embrec train" in text
    assert "python3 -m pytest -q" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python3 -m pytest -q" in ci
