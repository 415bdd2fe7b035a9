"""Training: the one ``fit`` loop, its batches, optimisers and post-training diagnostics."""

from embrec.training.fit import fit

__all__ = ["fit"]
