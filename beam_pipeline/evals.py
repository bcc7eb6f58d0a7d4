"""The evaluation sets a recipe decontaminates against, read once at launch into the index the
workers load (``transforms/decontaminate.py``). An evaluation file that cannot be read, or a row
of it that cannot, stops the run here: a run that promised to drop what an evaluation set holds
must not skip part of the set."""

from __future__ import annotations

import logging
from typing import Iterator

from beam_pipeline.errors import UsageError
from schemas.recipe import DecontaminateSpec, EvalSetSpec
from schemas.records import FailedFile, Item, Rejected
from transforms.decontaminate import EvalIndex, build_index
from transforms.readers.base import InputError
from transforms.readers.paths import expand_paths, infer_format
from transforms.readers.registry import plan_file, read_unit

LOGGER = logging.getLogger(__name__)


class EvalSetError(UsageError):
    """An evaluation set cannot be read; the message names the set, the file and what to fix."""


def _files(spec: EvalSetSpec) -> list[str]:
    try:
        return expand_paths(spec.paths)
    except InputError as error:
        raise EvalSetError(f"decontaminate: evaluation set {spec.name!r}: {error}") from None
    except (OSError, ValueError, ImportError) as error:
        raise EvalSetError(f"decontaminate: cannot list evaluation set {spec.name!r}: {type(error).__name__}: {error}") from None


def _rows(spec: EvalSetSpec, files: list[str]) -> Iterator[tuple[int, int, dict]]:
    fields = frozenset(spec.fields) if spec.fields else None
    for index, url in enumerate(files):
        fmt = spec.format or infer_format(url)
        where = f"decontaminate: evaluation set {spec.name!r}, {url}"
        seen_fields: set[str] = set()
        for unit in plan_file(url, fmt, fields, spec.csv):
            for record in read_unit(unit, fields, spec.csv):
                if isinstance(record, FailedFile):
                    raise EvalSetError(f"{where} cannot be read: {record.error}")
                if isinstance(record, Rejected):
                    codes = ", ".join(record.codes)
                    raise EvalSetError(f"{where} row {record.source.row} cannot be read ({codes}); fix or remove it")
                if isinstance(record, Item):
                    seen_fields.update(key for key, value in record.row.items() if value is not None)
                    yield index, record.source.row, record.row
        if fields and not fields & seen_fields:
            raise EvalSetError(f"{where} has no value in {', '.join(sorted(fields))}; check the set's fields")


def eval_index(spec: DecontaminateSpec) -> EvalIndex:
    """Every evaluation set read and indexed (``build_index``)."""
    sets = []
    for eval_set in spec.evals:
        files = _files(eval_set)
        sets.append((eval_set.name, files, _rows(eval_set, files)))
    index = build_index(spec, sets)
    for name, summary in index.summary.items():
        if not summary.items:
            raise EvalSetError(f"decontaminate: evaluation set {name!r} has no text of {spec.min_words} words or more "
                               f"({summary.rows} rows read): nothing to check against; check its paths and fields")
        LOGGER.debug("decontaminating against %s: %d rows, %d items checked (%d too short)", name, summary.rows,
                    summary.items, summary.too_short)
    return index
