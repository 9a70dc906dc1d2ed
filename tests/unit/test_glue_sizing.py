"""How the job sizes its read splits and shuffle partitions from the input."""

from __future__ import annotations

import pytest

from glue_jobs.orders.session import shuffle_partitions, split_bytes
from glue_jobs.orders.stats import BlockOffset, block_offsets

MIB = 1024**2


@pytest.mark.parametrize(
    ("input_bytes", "cores", "expected_splits"),
    [
        (450 * MIB, 2, 4),  # not 128+128+128+66: four equal splits, two per core
        (1000 * MIB, 2, 8),
        (256 * MIB, 2, 2),
        (200 * MIB, 8, 8),  # a big cluster: one split per core
        (3 * MIB, 2, 1),  # a small file is not cut below Spark's file-open cost
    ],
)
def test_splits_are_equal_and_a_multiple_of_the_cores(
    input_bytes: int, cores: int, expected_splits: int
) -> None:
    # Given an input size and the cores that read it
    # When the split size is chosen
    size = split_bytes(input_bytes, cores)
    # Then the file cuts into the expected number of splits, none above 128 MiB
    assert -(-input_bytes // size) == expected_splits
    assert size <= 128 * MIB


def test_shuffle_partitions_follow_the_input_size() -> None:
    # Given inputs of a few bytes and of 450 MiB on two cores
    # Then a small input gets one partition per core and a large one ~64 MiB of CSV each
    assert shuffle_partitions(100, 2) == 2
    assert shuffle_partitions(450 * MIB, 2) == 8
    # And the count is always a multiple of the cores (every core runs as many tasks)
    assert shuffle_partitions(200 * MIB, 2) == 4
    assert shuffle_partitions(450 * MIB, 3) == 9


def test_rows_are_numbered_per_file_across_its_splits() -> None:
    # Given two files (by id): file 7 read as two splits of 10 and 5 rows, file 3 as one
    blocks = {(7, 0): (10, 100), (7, 4096): (5, 8_589_934_592), (3, 0): (4, 17_179_869_184)}
    # When the offsets are computed
    offsets = block_offsets(blocks)
    # Then each split starts after the rows of the earlier splits of the same file only
    assert offsets == (
        BlockOffset(file_id=3, block_start=0, base_row=0, first_row_id=17_179_869_184),
        BlockOffset(file_id=7, block_start=0, base_row=0, first_row_id=100),
        BlockOffset(file_id=7, block_start=4096, base_row=10, first_row_id=8_589_934_592),
    )
