"""The command line's surface: fast help without PyTorch, complete flags, listings that match the
registries, --version, and hints that name flags in the shell and arguments in Python."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import embrec
from embrec.cli import SUBCOMMANDS, build_parser, main
from embrec.commands.catalog import DATASET_NAMES, MODEL_HELP, PRESET_HELP, SPLIT_HELP
from embrec.commands.options import cli_hint

SRC = str(Path(embrec.__file__).parent.parent)

HELP_PROBE = """
import sys
from embrec.cli import main
for argv in {argvs!r}:
    try:
        main(argv)
    except SystemExit:
        pass
heavy = sorted(m for m in ("torch", "pandas", "numpy", "pyarrow") if m in sys.modules)
print("HEAVY", heavy, file=sys.stderr)
import embrec
fit = embrec.fit  # the lazy names still resolve, importing torch on first use
print("LAZY", callable(fit) and "torch" in sys.modules, file=sys.stderr)
"""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found[name] = child
                found.update({f"{name} {k}": v for k, v in _subparsers(child).items()})
    return found


def test_help_of_every_command_imports_neither_torch_nor_pandas() -> None:
    argvs = [["--help"], ["--version"]] + [[*name.split(), "--help"]
                                          for name in _subparsers(build_parser())]
    run = subprocess.run([sys.executable, "-c", HELP_PROBE.format(argvs=argvs)],
                         capture_output=True, text=True, env={"PYTHONPATH": SRC}, check=True)
    assert "HEAVY []" in run.stderr and "LAZY True" in run.stderr
    assert run.stdout.count("usage: embrec") == len(argvs) - 1  # all but --version


def test_every_flag_has_help_and_every_command_its_own_usage() -> None:
    commands = _subparsers(build_parser())
    assert set(SUBCOMMANDS) <= set(commands)
    assert {"datasets list", "datasets fetch", "datasets info"} <= set(commands)
    for name, parser in commands.items():
        assert parser.format_usage().startswith(f"usage: embrec {name}"), name
        text = parser.format_help()
        assert "``" not in text, name  # no raw reStructuredText in descriptions
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{name} {action.option_strings or action.dest}"


def test_train_help_lists_every_preset_model_and_split_in_full(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for table in (PRESET_HELP, MODEL_HELP, SPLIT_HELP):
        for name, description in table.items():
            assert f"{name}  " in text and description in text
    assert "…" not in text and "(default: 0.1)" not in text
    assert "(default: synthetic)" in text and "--user-col COLUMN" in text


def test_the_help_catalog_matches_the_registries() -> None:
    from embrec.data.datasets import DATASETS
    from embrec.data.split import METHODS
    from embrec.models import MODELS
    from embrec.presets import PRESETS

    assert set(MODEL_HELP) == set(MODELS)
    assert {name: p.description for name, p in PRESETS.items()} == PRESET_HELP
    assert tuple(SPLIT_HELP) == METHODS
    assert set(DATASET_NAMES) == set(DATASETS)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"embrec {embrec.__version__} ")


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        embrec.nope  # noqa: B018


@pytest.mark.parametrize(("python", "cli"), [
    ("pass user=<column name or position>, or name it", "pass --user-col COLUMN, or name it"),
    ("did you mean rating='score'?", "did you mean --rating-col score?"),
    ("e.g. user=0, item=1, rating=2", "e.g. --user-col 0, --item-col 1, --rating-col 2"),
    ("pass sep=... and format=...", "pass --sep ... and --format ..."),
    ("pass on_bad_lines='skip' to skip them", "pass --on-bad-lines skip to skip them"),
    ("pass duplicates='last' to keep", "pass --duplicates last to keep"),
    ("pass scale=(min, max) with", "pass --scale MIN MAX with"),
    ("raise weight_decay, or stop earlier with early_stopping",
     "raise --weight-decay, or stop earlier with --early-stopping"),
    ("on_unknown='mean' (CLI: --on-unknown mean) for", "--on-unknown mean for"),
    ("pass kind='score' (CLI: --kind score) for the", "pass --kind score for the"),
])
def test_hints_name_flags_in_the_cli(python: str, cli: str) -> None:
    assert cli_hint(f"msg user=1\n  hint: {python}") == f"msg user=1\n  hint: {cli}"


def test_predict_without_a_pair_says_what_it_needs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "no/such/dir"]) == 2
    err = capsys.readouterr().err
    assert "predict needs a pair (--user and --item) or a file of pairs (--input)" in err
    assert "None" not in err


def test_fetching_synthetic_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["datasets", "fetch"])
    assert "required: NAME" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["datasets", "fetch", "synthetic"])
    assert "invalid choice: 'synthetic'" in capsys.readouterr().err


def test_plain_words_in_hints_stay_words() -> None:
    text = "x\n  hint: check the validation split, the seed and the device; epochs=0 is too few"
    assert cli_hint(text) == ("x\n  hint: check the validation split, the seed and the device; "
                              "--epochs 0 is too few")
