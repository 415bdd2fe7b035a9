"""The ``embrec`` command: the library's verbs from the shell.

The parser and the subcommands' bodies live in :mod:`embrec.commands`. ``main`` prints
an ``EmbrecError`` as one message, its hints naming the command's flags, and exits 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import os
import sys

from embrec.commands.display import cli_warnings
from embrec.commands.options import cli_hint
from embrec.commands.parser import SUBCOMMANDS, build_parser
from embrec.errors import EmbrecError

__all__ = ["SUBCOMMANDS", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the ``embrec`` command line on ``argv`` (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 on success, 2 for a user error (bad input, unknown
        id, bad setting, corrupt model folder), 3 when ``train`` produced a
        degenerate model (diverged, constant, or worse than predicting the mean;
        not saved unless ``--allow-degenerate``), 130 on Ctrl-C.
    """
    args = build_parser().parse_args(argv)
    # Idle OpenMP threads sleep instead of spinning, which stalls them when other processes
    # share the cores. Only the command sets it, before torch loads; a user's setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        with cli_warnings():
            code: int = args.handler(args)
    except EmbrecError as error:
        print(f"error: {cli_hint(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
