"""Large tables on transparent huge pages: same values and uses as torch.zeros."""

from __future__ import annotations

import mmap

import pytest
import torch

from embrec.training import sparse


def test_a_large_cpu_table_is_a_zeroed_writable_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    advised: list[int] = []

    class Recording(mmap.mmap):
        def madvise(self, option: int, *args: int) -> None:
            advised.append(option)
            super().madvise(option, *args)

    monkeypatch.setattr(sparse, "HUGE_MIN_BYTES", 1 << 16)
    monkeypatch.setattr(sparse.mmap, "mmap", Recording)
    table = sparse.huge_zeros(4096, 33, torch.float32, torch.device("cpu"))
    assert table.shape == (4096, 33) and table.dtype == torch.float32 and table.is_contiguous()
    assert advised == ([] if sparse._HUGEPAGE is None else [sparse._HUGEPAGE])
    assert int(torch.count_nonzero(table)) == 0
    table.index_copy_(0, torch.tensor([5, 4000]), torch.ones(2, 33))
    assert float(table.sum()) == 66.0
    view = table[:, :8]
    del table  # a view keeps the mapping alive
    assert float(view[5].sum()) == 8.0


def test_small_tables_and_other_dtypes_use_torch() -> None:
    small = sparse.huge_zeros(10, 4, torch.float32, torch.device("cpu"))
    assert small.shape == (10, 4) and int(torch.count_nonzero(small)) == 0
    ints = sparse.huge_zeros(10, 4, torch.int64, torch.device("cpu"))
    assert ints.dtype == torch.int64
