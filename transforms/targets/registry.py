"""Every target, keyed by the recipe's ``target.kind``. Adding a target: its module, and its line here."""

from __future__ import annotations

import difflib

from transforms.targets.azure_openai import AzureOpenAI
from transforms.targets.base import Target, TargetError
from transforms.targets.bedrock_nova import BedrockNova
from transforms.targets.fireworks import Fireworks
from transforms.targets.gpt_oss import GptOss
from transforms.targets.hf import Hf
from transforms.targets.openai import OpenAI
from transforms.targets.together import Together
from transforms.targets.vertex_gemini import VertexGemini

TARGETS: dict[str, type[Target]] = {target.kind: target for target in (
    OpenAI, AzureOpenAI, Together, Fireworks, VertexGemini, BedrockNova, Hf, GptOss)}


def target_type(kind: str | None) -> type[Target]:
    """The target of a kind as stats.json names it (a run from before targets had kinds: OpenAI)."""
    return TARGETS.get(kind or OpenAI.kind, OpenAI)


def target_for(recipe) -> Target:
    """The recipe's target, resolved and checked against the recipe (TargetError: what to fix)."""
    kind = recipe.target.kind
    if kind not in TARGETS:
        close = difflib.get_close_matches(kind, list(TARGETS), n=1, cutoff=0.6)
        raise TargetError(f"target.kind: unknown target {kind!r}" + (f" (did you mean {close[0]}?)" if close else "")
                          + f"; known: {', '.join(TARGETS)}")
    return TARGETS[kind](recipe)


__all__ = ["TARGETS", "Target", "TargetError", "target_for", "target_type"]
