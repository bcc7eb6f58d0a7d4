"""Token counts for OpenAI's open-weight gpt-oss models, in the harmony format they were trained on.

The example becomes a harmony conversation — the system message (model identity, reasoning
effort, channels), the recipe's system prompt and tools as the developer message, the
assistant's reasoning (``thinking``) in the ``analysis`` channel, its answer in ``final``, tool
calls in ``commentary`` addressed to ``functions.<name>`` — and ``openai-harmony``, OpenAI's own
renderer, renders it for training (the last message ends in ``<|return|>``). The trained tokens
are those of the assistant's messages.

Reasoning is kept for the last turn (the assistant's messages after the last user message) and
dropped from earlier turns, as gpt-oss's chat template renders a conversation for training.
ftprep drops it itself and renders with ``auto_drop_analysis`` off: openai-harmony 0.0.8's own
dropping removes the analysis before the *first* final message (openai/harmony#96), which in a
single-turn example is the very reasoning the example is meant to teach.

``openai-harmony`` reads the ``o200k_base`` file its ``o200k_harmony`` encoding is built on
from a directory named by ``TIKTOKEN_ENCODINGS_BASE``, else downloads it: ftprep hands it the
file resolved and sha256-verified by ``transforms/encodings.py``, so nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from schemas.models import ENCODING_FILES
from schemas.recipe import GptOssTarget, LimitsSpec
from schemas.records import TokenCount
from transforms.encodings import resolve_encoding_bytes
from transforms.targets.chat_template import ChatTemplateError
from transforms.targets.hf_tokens import Encoded

BASE_ENCODING = "o200k_base"
_EFFORTS = {"low": "LOW", "medium": "MEDIUM", "high": "HIGH"}


def load_harmony_encoding(*, encodings_url: str | None = None):
    """openai-harmony's gpt-oss encoding, built from the verified ``o200k_base`` file."""
    import openai_harmony

    data, _ = resolve_encoding_bytes(BASE_ENCODING, encodings_url=encodings_url)
    folder = os.path.join(tempfile.gettempdir(), "ftprep-harmony")
    path = os.path.join(folder, f"{BASE_ENCODING}.tiktoken")
    expected = ENCODING_FILES[BASE_ENCODING].sha256
    if not (os.path.exists(path) and hashlib.sha256(open(path, "rb").read()).hexdigest() == expected):
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    previous = os.environ.get("TIKTOKEN_ENCODINGS_BASE")
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = folder
    try:
        return openai_harmony.load_harmony_encoding(openai_harmony.HarmonyEncodingName.HARMONY_GPT_OSS)
    finally:
        if previous is None:
            os.environ.pop("TIKTOKEN_ENCODINGS_BASE", None)
        else:
            os.environ["TIKTOKEN_ENCODINGS_BASE"] = previous


def _text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        if any(not isinstance(p, dict) or p.get("type") != "text" for p in content):
            raise ChatTemplateError(f"{where}: gpt-oss takes text only (an image or other part is not text)")
        return "".join(p.get("text", "") for p in content)
    raise ChatTemplateError(f"{where}: content is {type(content).__name__}, expected text")


def harmony_messages(messages: list[dict[str, Any]], *, tools: list[dict] | None = None,
                     reasoning_effort: str = "medium", conversation_start_date: str | None = None) -> list:
    """An OpenAI-style conversation as harmony messages, as gpt-oss's chat template maps it."""
    from openai_harmony import (
        Author, DeveloperContent, Message, ReasoningEffort, Role, SystemContent, ToolDescription,
    )

    system = SystemContent.new().with_reasoning_effort(getattr(ReasoningEffort, _EFFORTS[reasoning_effort]))
    if conversation_start_date:
        system = system.with_conversation_start_date(conversation_start_date)
    result = [Message.from_role_and_content(Role.SYSTEM, system)]
    instructions = "\n\n".join(_text(m.get("content"), f"messages[{i}]")
                               for i, m in enumerate(messages) if m.get("role") == "system")
    functions = [t.get("function", t) for t in tools or () if isinstance(t, dict)]
    if instructions or functions:
        developer = DeveloperContent.new()
        if instructions:
            developer = developer.with_instructions(instructions)
        if functions:
            developer = developer.with_function_tools([
                ToolDescription.new(f["name"], f.get("description", ""), f.get("parameters")) for f in functions])
        result.append(Message.from_role_and_content(Role.DEVELOPER, developer))
    called: dict[str, str] = {}  # tool_call_id -> function name, for the tool's answer
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    for index, message in enumerate(messages):
        role, where = message.get("role"), f"messages[{index}]"
        if role == "system":
            continue
        if role == "user":
            result.append(Message.from_role_and_content(Role.USER, _text(message.get("content"), where)))
        elif role == "assistant":
            if message.get("thinking") and index > last_user:
                result.append(Message.from_role_and_content(Role.ASSISTANT, message["thinking"]).with_channel("analysis"))
            calls = message.get("tool_calls") or ([message["function_call"]] if message.get("function_call") else [])
            for call in calls:
                function = call.get("function", call)
                called[call.get("id", "")] = function["name"]
                result.append(Message.from_role_and_content(Role.ASSISTANT, function.get("arguments", ""))
                              .with_channel("commentary").with_recipient(f"functions.{function['name']}")
                              .with_content_type("<|constrain|>json"))
            content = _text(message.get("content"), where)
            if content or not calls:
                result.append(Message.from_role_and_content(Role.ASSISTANT, content).with_channel("final"))
        elif role in ("tool", "function"):
            name = called.get(message.get("tool_call_id", "")) or message.get("name") or "tool"
            author = Author.new(Role.TOOL, f"functions.{name}")
            result.append(Message.from_author_and_content(author, _text(message.get("content"), where))
                          .with_channel("commentary").with_recipient("assistant"))
        else:
            raise ChatTemplateError(f"{where}: gpt-oss has no role {role!r}")
    return result


class HarmonyCounter:
    """Counts examples as gpt-oss trains on them; build once per worker (``HarmonySource.load``)."""

    def __init__(self, encoding, *, reasoning_effort: str = "medium", conversation_start_date: str | None = None):
        self._encoding = encoding
        self._options = {"reasoning_effort": reasoning_effort, "conversation_start_date": conversation_start_date}
        special = {name: encoding.encode(name, allowed_special="all")[0]
                   for name in ("<|start|>", "<|message|>", "<|channel|>", "<|end|>", "<|call|>", "<|return|>")}
        self._specials = (special["<|start|>"], special["<|message|>"],
                          frozenset(special[n] for n in ("<|end|>", "<|call|>", "<|return|>")))
        self._header_stops = (special["<|channel|>"],)

    def text(self, text: str) -> int:
        return len(self._encoding.encode(text, disallowed_special=()))

    def encode(self, messages: list[dict[str, Any]], *, tools: list[dict] | None = None) -> Encoded:
        from openai_harmony import Conversation, HarmonyError, RenderConversationConfig

        try:
            rendered = harmony_messages(messages, tools=tools, **self._options)
            ids = self._encoding.render_conversation_for_training(
                Conversation.from_messages(rendered), RenderConversationConfig(auto_drop_analysis=False))
        except HarmonyError as error:
            raise ChatTemplateError(f"harmony cannot render the example: {error}") from None
        return Encoded(list(ids), self._assistant_mask(ids))

    def _assistant_mask(self, ids: list[int]) -> list[int]:
        """1 on every token of the assistant's messages, read off the rendering itself (the
        training rendering rewrites some messages, e.g. the system message once tools exist):
        a message runs from ``<|start|>`` to its ``<|end|>``, ``<|call|>`` or ``<|return|>``,
        and its author is the header's first word."""
        start, message, ends = self._specials
        mask, index = [0] * len(ids), 0
        while index < len(ids):
            if ids[index] != start:
                index += 1
                continue
            header_end = index + 1
            while header_end < len(ids) and ids[header_end] not in (message, *self._header_stops):
                header_end += 1
            author = self._encoding.decode_utf8(ids[index + 1:header_end]).split(" ", 1)[0]
            end = header_end
            while end < len(ids) and ids[end] not in ends:
                end += 1
            if author == "assistant":
                mask[index:end + 1] = [1] * (min(end + 1, len(ids)) - index)
            index = end + 1
        return mask

    def chat(self, example: dict[str, Any]) -> TokenCount:
        return self.encode(example["messages"], tools=example.get("tools")).count()

    def completion(self, example: dict[str, Any]) -> TokenCount:
        """A prompt and its completion as a user turn and the assistant's answer."""
        encoded = self.encode([{"role": "user", "content": example["prompt"]},
                               {"role": "assistant", "content": example["completion"]}])
        trained = sum(encoded.trained)
        return TokenCount(len(encoded.ids), len(encoded.ids), trained,
                          (("completion", trained), ("prompt", len(encoded.ids) - trained)))

    def preference(self, example: dict[str, Any]) -> TokenCount:
        source = example["input"]
        chosen = self.encode([*source["messages"], *example["preferred_output"]], tools=source.get("tools"))
        rejected = self.encode([*source["messages"], *example["non_preferred_output"]], tools=source.get("tools"))
        return TokenCount(len(chosen.ids) + len(rejected.ids), max(len(chosen.ids), len(rejected.ids)),
                          sum(chosen.trained) + sum(rejected.trained))

    def count(self, example: dict[str, Any], fmt: str) -> TokenCount:
        return getattr(self, fmt)(example)


@dataclass(frozen=True)
class HarmonySource:
    """Where gpt-oss's counter comes from (a recipe's ``target: gpt-oss``)."""

    LIMIT_KEY = "target.max_length"

    encodings_url: str | None = None
    reasoning_effort: str = "medium"
    conversation_start_date: str | None = None

    @classmethod
    def from_target(cls, target: GptOssTarget, *, encodings_url: str | None = None) -> "HarmonySource":
        return cls(encodings_url, target.reasoning_effort, target.conversation_start_date)

    @property
    def label(self) -> str:
        return "o200k_harmony"

    def check(self) -> "HarmonySource":
        """openai-harmony installed and the base encoding resolvable, before the run."""
        try:
            import openai_harmony  # noqa: F401
        except ImportError:
            raise ChatTemplateError("target gpt-oss needs openai-harmony (pip install openai-harmony)") from None
        resolve_encoding_bytes(BASE_ENCODING, encodings_url=self.encodings_url)
        return self

    def load(self, limits: LimitsSpec = LimitsSpec()) -> HarmonyCounter:
        return HarmonyCounter(load_harmony_encoding(encodings_url=self.encodings_url),
                              reasoning_effort=self.reasoning_effort,
                              conversation_start_date=self.conversation_start_date)
