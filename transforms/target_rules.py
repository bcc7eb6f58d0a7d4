"""The target's row for every example, made once (``Target.to_row``): a hosted provider's row,
rejected with the provider's rule as its code when the row cannot express the example or the
provider forbids it; TRL's row for the open-weights targets. The row is kept on the item: it is
what the token counter reads (where the target's source reads rows) and what is written. Runs
after OpenAI's rules (``ValidateExamples``), which ftprep's examples always meet first."""

from __future__ import annotations

from schemas.records import KEPT, REJECTED, Item, Rejection
from transforms.stage import BatchDoFn, BatchStage
from transforms.targets.base import Target, TargetRuleError


class _CheckTargetFn(BatchDoFn):
    STAGE = "CheckTarget"

    def __init__(self, target: Target, fmt: str):
        super().__init__()
        self._target = target
        self._format = fmt

    def handle(self, item: Item, emit) -> None:
        try:
            item.target_row = self._target.to_row(item.example, self._format)
        except TargetRuleError as error:
            emit(REJECTED, self.reject(item, Rejection(error.code, error.message)))
            return
        emit(KEPT, item)


class CheckTarget(BatchStage):
    """Each example's row in the target's shape, or its rejection; returns ``(batches, rejected)``."""

    def __init__(self, *, target: Target, format: str):
        target.check_format(format)
        super().__init__(_CheckTargetFn(target, format))
