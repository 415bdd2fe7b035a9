"""Dropout masks: the drawn bits decide, both arithmetic paths give the same mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embrec.models.tower import DropoutMasks, dropout_mask


def _reference(shape: tuple[int, int], rate: float, seed: int) -> np.ndarray:
    """The mask from the same random words, computed independently in float64."""
    count = shape[0] * shape[1]
    words = torch.empty((count + 3) // 4, dtype=torch.int64)
    words.random_(-(2**63), None, generator=torch.Generator().manual_seed(seed))
    fields = words.numpy().view(np.int16)[:count].reshape(shape).astype(np.int64)
    kept = fields + 32768 >= round(rate * 65536)  # uniform on 0..65535: P(kept) = 1 - rate
    return np.where(kept, 1.0 / (1.0 - rate), 0.0)


@pytest.mark.parametrize("rate", [0.3, 0.75, 0.2, 0.5, 0.01, 0.999])
@pytest.mark.parametrize("shape", [(2621, 100), (7, 3), (1, 1)])
def test_masks_keep_an_entry_when_its_random_field_is_above_the_rate(
        rate: float, shape: tuple[int, int]) -> None:
    expected = _reference(shape, rate, seed=11)
    for dtype in (torch.float32, torch.float64):
        mask = dropout_mask(shape, rate, torch.zeros(1, dtype=dtype),
                            torch.Generator().manual_seed(11))
        assert mask.dtype == dtype and mask.shape == shape
        np.testing.assert_allclose(mask.numpy(), expected, rtol=1e-7, atol=0)


def test_the_rate_is_honoured() -> None:
    mask = dropout_mask((1000, 262), 0.3, torch.zeros(1), torch.Generator().manual_seed(0))
    dropped = float((mask == 0).double().mean())
    assert abs(dropped - 0.3) < 4 * (0.3 * 0.7 / mask.numel()) ** 0.5
    assert float(mask.double().mean()) == pytest.approx(1.0, abs=0.01)  # inverted dropout


def test_blocks_are_handed_out_in_order_and_redrawn_when_used_up() -> None:
    masks, like = DropoutMasks(0.5), torch.zeros(64, 100)
    masks.reset(torch.Generator().manual_seed(3))
    taken = [masks.take(like) for _ in range(41)]  # a block holds 2,621 rows of 100: 40 batches
    block = dropout_mask((2621, 100), 0.5, like, torch.Generator().manual_seed(3))
    for k in range(40):
        assert torch.equal(taken[k], block[64 * k:64 * (k + 1)])
    assert not torch.equal(taken[40], block[:64])  # the 41st batch came from a new block
    assert taken[40].shape == (64, 100)
