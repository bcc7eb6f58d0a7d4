"""Token counts with an open-weights model's own tokenizer and chat template.

The example is rendered through the model's chat template (``transforms/chat_template.py``)
and the text encoded with Hugging Face ``tokenizers`` without adding special tokens — the
template writes them — as ``transformers``' ``apply_chat_template(..., tokenize=True)`` does.
Trained tokens are those that overlap the template's generation spans.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from schemas.recipe import LimitsSpec
from schemas.records import TokenCount
from transforms.chat_template import ChatTemplate, ChatTemplateRenderer, trained_mask


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    trained: list[int]  # 1 where the loss trains on the token

    def count(self) -> TokenCount:
        return TokenCount(total=len(self.ids), context=len(self.ids), trained=sum(self.trained))


class HfTokenCounter:
    """``encode(messages, tools=...)`` per conversation; build once per worker (it holds the
    tokenizer and the compiled template)."""

    def __init__(self, tokenizer, template: ChatTemplate, *, limits: LimitsSpec = LimitsSpec()):
        self._tokenizer = tokenizer
        self._renderer = ChatTemplateRenderer(template, limits=limits)

    @classmethod
    def from_texts(cls, tokenizer_json: str, tokenizer_config: str, chat_template: str | None = None, *,
                   limits: LimitsSpec = LimitsSpec()) -> "HfTokenCounter":
        """From the texts of ``tokenizer.json``, ``tokenizer_config.json`` and, when the model has
        one, ``chat_template.jinja``."""
        from tokenizers import Tokenizer

        config = json.loads(tokenizer_config)
        return cls(Tokenizer.from_str(tokenizer_json), ChatTemplate.from_tokenizer_config(config, chat_template),
                   limits=limits)

    def encode(self, messages: list[dict[str, Any]], *, tools: list[dict] | None = None) -> Encoded:
        rendered = self._renderer.render(messages, tools=tools)
        encoding = self._tokenizer.encode(rendered.text, add_special_tokens=False)
        return Encoded(list(encoding.ids), trained_mask(encoding.offsets, rendered.trained))

    def chat(self, example: dict[str, Any]) -> TokenCount:
        return self.encode(example["messages"], tools=example.get("tools")).count()
