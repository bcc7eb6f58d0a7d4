"""Parquet: one read unit per slice of a row group, so that one large file is spread over workers."""

from __future__ import annotations

from typing import Iterator

import fsspec

from schemas.records import Item, Source
from transforms.readers.base import ReadUnit, Reader, require_columns

BATCH_ROWS = 1024
# Rows per read unit.
UNIT_ROWS = 4 * BATCH_ROWS
# A file of fewer than this many units' rows is still cut into this many units (of at least
# MIN_UNIT_ROWS rows), so that a small input keeps every worker busy: a slow template would
# otherwise hold up one worker while the others idle.
SMALL_FILE_UNITS = 8
MIN_UNIT_ROWS = 64


class ParquetReader(Reader):
    format = "parquet"

    def columns(self, url: str) -> list[str]:
        import pyarrow.parquet as pq

        with fsspec.open(url, "rb") as f:
            return list(pq.ParquetFile(f).schema_arrow.names)

    def plan(self, url: str, required: frozenset[str] | None = None) -> list[ReadUnit]:
        import pyarrow.parquet as pq

        with fsspec.open(url, "rb") as f:
            parquet = pq.ParquetFile(f)
            metadata = parquet.metadata
            require_columns(parquet.schema_arrow.names, required)
        units, first_row = [], 0
        size = min(UNIT_ROWS, max(MIN_UNIT_ROWS, -(-metadata.num_rows // SMALL_FILE_UNITS)))
        for index in range(metadata.num_row_groups):
            rows = metadata.row_group(index).num_rows
            # Large row groups are cut into slices so that work spreads evenly over the workers
            # (runners hand out units by count, not by size). A slice decodes and skips the
            # batches before it: cheap next to tokenising them.
            for start in range(0, max(rows, 1), size):
                units.append(
                    ReadUnit(url, self.format, row_group=index, first_row=first_row + start,
                             batches_to_skip=start // BATCH_ROWS, rows_to_skip=start % BATCH_ROWS,
                             rows=min(size, rows - start))
                )
            first_row += rows
        return units

    def read(self, unit: ReadUnit, columns: frozenset[str] | None) -> Iterator[Item]:
        import pyarrow.parquet as pq

        with fsspec.open(unit.url, "rb") as f:
            parquet = pq.ParquetFile(f)
            present = parquet.schema_arrow.names
            wanted = present if columns is None else [c for c in present if c in columns]
            row, end = unit.first_row, None if unit.rows is None else unit.first_row + unit.rows
            batches = parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=[unit.row_group], columns=wanted)
            for index, batch in enumerate(batches):
                if index < unit.batches_to_skip:
                    continue
                if index == unit.batches_to_skip and unit.rows_to_skip:
                    batch = batch.slice(unit.rows_to_skip)
                for values in batch.to_pylist():
                    if end is not None and row >= end:
                        return
                    yield Item(Source(unit.url, row), values)
                    row += 1
