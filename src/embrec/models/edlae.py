"""EDLAE (Steck 2020): EASE whose penalty is the one dropout on the input implies, emphasised.

Training a linear item-item autoencoder with dropout rate ``p`` on its input,
and counting the error only on the dropped-out entries (full emphasis), has a
closed form: EASE's with the diagonal penalty ``Λ = λ·I + p / (1 - p) ·
diag(XᵀX)`` instead of ``λ·I`` (``diag(B) = 0`` as in EASE). Popular items
are shrunk more than rare ones, which is what stops the model from leaning on
a few items towards the identity. It is the same model as ``ease`` otherwise
(history rows times ``B``, exact fold-in, the ``max_items`` refusal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from embrec.config import require
from embrec.models.ease import EASEConfig

__all__ = ["EDLAEConfig"]


@dataclass(frozen=True, kw_only=True, slots=True)
class EDLAEConfig(EASEConfig):
    """EDLAE's hyperparameters: EASE's and the dropout rate.

    Attributes:
        l2: the constant part λ of the penalty. The default, with ``dropout``,
            was chosen on validation rows carved from ML-100K's 80% training
            part, rating-valued input (``benchmarks/accuracy.py``; the grid and
            the figures are in ``benchmarks/results/accuracy.md``).
        dropout: the dropout rate ``p`` in [0, 1) whose emphasised denoising the
            penalty ``p / (1 - p) · diag(XᵀX)`` stands for; 0 gives EASE.
        values: ``rating`` or ``binary`` input, as for EASE.
        max_items: the largest catalogue accepted (see :class:`EASEConfig`).
    """

    name: ClassVar[str] = "edlae"
    l2: float = 5_000.0
    dropout: float = 0.55

    def __post_init__(self) -> None:
        EASEConfig.__post_init__(self)
        require(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "must be in [0, 1)")
