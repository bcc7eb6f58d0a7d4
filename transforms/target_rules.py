"""A hosted provider's rules on every example: the example converted to the provider's row
(``schemas/targets/<kind>.py``), rejected with the provider's rule as its code when the row
cannot express it or the provider forbids it. Runs after OpenAI's rules (``ValidateExamples``),
which ftprep's examples always meet first."""

from __future__ import annotations

from schemas.records import KEPT, REJECTED, Item, Rejection
from schemas.targets import HOSTED, TargetRuleError
from transforms.stage import BatchDoFn, BatchStage


class _CheckTargetFn(BatchDoFn):
    STAGE = "CheckTarget"

    def __init__(self, kind: str, fmt: str):
        super().__init__()
        self._kind = kind
        self._format = fmt

    def setup(self):
        self._to_row = HOSTED[self._kind].to_row

    def handle(self, item: Item, emit) -> None:
        try:
            self._to_row(item.example, self._format)
        except TargetRuleError as error:
            emit(REJECTED, self.reject(item, Rejection(error.code, error.message)))
            return
        emit(KEPT, item)


class CheckTarget(BatchStage):
    """Reject the examples a hosted provider's format cannot hold; returns ``(batches, rejected)``."""

    def __init__(self, *, kind: str, format: str):
        if kind not in HOSTED:
            raise ValueError(f"unknown hosted target {kind!r}; known: {', '.join(HOSTED)}")
        super().__init__(_CheckTargetFn(kind, format))
