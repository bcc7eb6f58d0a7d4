"""The hosted providers beside OpenAI, one module each (see ``base.py``)."""

from __future__ import annotations

from schemas.targets import azure_openai, bedrock_nova, fireworks, together, vertex_gemini
from schemas.targets.base import HostedTarget, TargetRuleError

HOSTED: dict[str, HostedTarget] = {module.TARGET.kind: module.TARGET for module in (
    azure_openai, together, fireworks, vertex_gemini, bedrock_nova)}



def target_row(kind: str, example: dict, fmt: str) -> dict:
    """The row a target's files hold for ``example`` (ftprep's, OpenAI-shaped): OpenAI's example as
    it is, TRL's row for the open-weights targets, the provider's row for a hosted one."""
    hosted = HOSTED.get(kind)
    if hosted is not None:
        return hosted.to_row(example, fmt)
    if kind in ("hf", "gpt-oss"):
        from schemas.formats import trainer_row

        return trainer_row(example, fmt)
    return example


__all__ = ["HOSTED", "HostedTarget", "TargetRuleError", "target_row"]
