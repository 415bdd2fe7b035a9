"""The ``embrec`` command's parts: parser, data-reading flags, configs, output and subcommands.

:mod:`embrec.cli` holds ``main``; :mod:`.parser` builds the argument parser without
importing PyTorch or pandas (so ``--help`` is instant); :mod:`.handlers` and :mod:`.tune`
hold the subcommands' bodies, imported only when a command runs.
"""
