"""Token counts with an open-weights model's own tokenizer and chat template.

The example is rendered through the model's chat template (``chat_template.py``)
and the text encoded with Hugging Face ``tokenizers`` without adding special tokens — the
template writes them — as ``transformers``' ``apply_chat_template(..., tokenize=True)`` does.
Trained tokens are those that overlap the template's generation spans.
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from schemas.formats import tokenized_row, trainer_row
from schemas.recipe import LimitsSpec
from schemas.records import TokenCount
from transforms.targets.byte_bpe import ByteLevelBpe, agrees, byte_level_bpe, byte_spans, mask_from_bytes
from transforms.targets.chat_template import ChatTemplate, ChatTemplateRenderer, trained_mask, trl_training_template
from transforms.targets.hf_files import CONFIG_FILE, TEMPLATE_FILE, TOKENIZER_FILE, resolve_tokenizer_files
from transforms.versions import installed_version


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    trained: list[int]  # 1 where the loss trains on the token
    missed: int = 0  # assistant turns with content whose trained span was not found

    def count(self) -> TokenCount:
        return TokenCount(total=len(self.ids), context=len(self.ids), trained=sum(self.trained),
                          untrained_turns=self.missed)


class HfTokenCounter:
    """``encode(messages, tools=...)`` per conversation; build once per worker (it holds the
    tokenizer and the compiled template)."""

    def __init__(self, tokenizer_json: str, template: ChatTemplate, *, limits: LimitsSpec = LimitsSpec(),
                 variables: tuple[tuple[str, Any], ...] = (), fast: ByteLevelBpe | None = None, tokenizer=None):
        # tokenizers' Tokenizer, built when first needed: with the byte-level fast path a worker
        # may never need it (it holds ~80 MB for a 150k vocabulary).
        self._tokenizer_json = tokenizer_json
        self._tokenizer = tokenizer
        # The same ids by tiktoken's BPE, where the tokenizer is byte-level BPE (byte_bpe.py).
        self._fast = fast
        self._renderer = ChatTemplateRenderer(template, limits=limits, variables=variables)
        self._eos = template.special_tokens.get("eos_token")

    @classmethod
    def from_texts(cls, tokenizer_json: str, tokenizer_config: str, chat_template: str | None = None, *,
                   limits: LimitsSpec = LimitsSpec(), variables: tuple[tuple[str, Any], ...] = (),
                   byte_level: bool | None = None) -> "HfTokenCounter":
        """From the texts of ``tokenizer.json``, ``tokenizer_config.json`` and, when the model has
        one, ``chat_template.jinja``. ``byte_level``: whether the launch found tiktoken's BPE to
        give the tokenizer's ids (``HfSource.check``); None finds out now."""
        from tokenizers import Tokenizer

        template = ChatTemplate.from_tokenizer_config(json.loads(tokenizer_config), chat_template)
        fast = byte_level_bpe(json.loads(tokenizer_json)) if byte_level is not False else None
        tokenizer = None
        if fast is not None and byte_level is None:
            tokenizer = Tokenizer.from_str(tokenizer_json)
            fast = fast if agrees(fast, tokenizer) else None
        return cls(tokenizer_json, template, limits=limits, variables=variables, fast=fast, tokenizer=tokenizer)

    @property
    def byte_level(self) -> bool:
        return self._fast is not None

    def encode(self, messages: list[dict[str, Any]], *, tools: list[dict] | None = None) -> Encoded:
        rendered = self._renderer.render(messages, tools=tools)
        fast = self._fast
        normalized = fast.normalized(rendered.text, rendered.trained) if fast is not None else None
        if normalized is not None:
            text, spans = normalized
            ids = fast.encode(text)
            starts, ends = fast.byte_offsets(ids)
            return Encoded(ids, mask_from_bytes(starts, ends, byte_spans(text, spans)), rendered.missed)
        encoding = self.tokenizer.encode(rendered.text, add_special_tokens=False)
        return Encoded(list(encoding.ids), trained_mask(encoding.offsets, rendered.trained), rendered.missed)

    @property
    def tokenizer(self):
        """The model's ``tokenizers.Tokenizer`` (``ftprep preview --mask`` decodes token by token with it)."""
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_str(self._tokenizer_json)
        return self._tokenizer

    def pieces(self, ids: list[int]) -> list[str]:
        """Each token's text, decoded on its own (special tokens kept; a token holding part of a
        character shows U+FFFD): how masks are checked by eye. With the byte-level fast path,
        from its rank table, without loading the tokenizer."""
        if self._fast is not None:
            decode = self._fast.encoding.decode_single_token_bytes
            return [decode(token).decode("utf-8", "replace") for token in ids]
        tokenizer = self.tokenizer
        return [tokenizer.decode([token], skip_special_tokens=False) for token in ids]

    def text(self, text: str) -> int:
        if self._fast is not None and self._fast.takes(text):
            return len(self._fast.encode(text))
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def chat(self, row: dict[str, Any]) -> TokenCount:
        return self.encode(row["messages"], tools=row.get("tools")).count()

    def _completion(self, row: dict[str, Any]) -> tuple[list[int], int]:
        """As TRL's SFTTrainer tokenizes prompt-completion text: prompt + completion in one
        encoding with the tokenizer's special tokens, then the EOS token where it is missing;
        the ids, and where the completion starts: where the prompt's own encoding and the whole's
        diverge (TRL's common_prefix_length; tokens may merge across the boundary)."""
        tokenizer = self.tokenizer  # its post-processor adds the special tokens a completion starts with
        prompt = tokenizer.encode(row["prompt"]).ids
        ids = tokenizer.encode(row["prompt"] + row["completion"]).ids
        eos = tokenizer.token_to_id(self._eos) if self._eos else None
        if eos is not None and (not ids or ids[-1] != eos):
            ids.append(eos)
        shared = 0
        for ours, whole in zip(prompt, ids):
            if ours != whole:
                break
            shared += 1
        return ids, shared

    @staticmethod
    def _completion_count(ids: list[int], prompt: int) -> TokenCount:
        trained = len(ids) - prompt
        return TokenCount(len(ids), len(ids), trained, (("completion", trained), ("prompt", prompt)))

    def completion(self, row: dict[str, Any]) -> TokenCount:
        return self._completion_count(*self._completion(row))

    def tokenized(self, row: dict[str, Any], fmt: str, form: str) -> tuple[TokenCount, dict[str, list[int]]]:
        """The row's count and what the trainer trains on (``schemas/formats.py`` tokenized_row)."""
        if fmt == "chat":
            encoded = self.encode(row["messages"], tools=row.get("tools"))
            return encoded.count(), tokenized_row(encoded.ids, encoded.trained, fmt, form)
        if fmt == "completion":
            ids, prompt = self._completion(row)
            return self._completion_count(ids, prompt), tokenized_row(ids, [0] * prompt + [1] * (len(ids) - prompt), fmt, form)
        raise ValueError(f"no tokenized rows for {fmt} examples")

    def preference(self, row: dict[str, Any]) -> TokenCount:
        """Both sequences, the prompt with the chosen answer and with the rejected one, rendered
        whole through the template as a DPO trainer sees them; the limit applies to the longer."""
        tools = row.get("tools")
        chosen = self.encode([*row["prompt"], *row["chosen"]], tools=tools)
        rejected = self.encode([*row["prompt"], *row["rejected"]], tools=tools)
        total = len(chosen.ids) + len(rejected.ids)
        return TokenCount(total, max(len(chosen.ids), len(rejected.ids)), sum(chosen.trained) + sum(rejected.trained),
                          untrained_turns=chosen.missed + rejected.missed)

    def count_row(self, row: dict[str, Any], fmt: str) -> TokenCount:
        """A row as TRL's trainers read it (``schemas/formats.py`` ``trainer_row``): what the trainer renders."""
        return getattr(self, fmt)(row)

    def count(self, example: dict[str, Any], fmt: str) -> TokenCount:
        """An example in ftprep's (OpenAI's) shape, as TRL would read its row."""
        return self.count_row(trainer_row(example, fmt), fmt)


def _digest(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


# Counters loaded in this process, by the tokenizer files they read (HfSource.pieces).
_LOADED: "weakref.WeakValueDictionary[tuple, HfTokenCounter]" = weakref.WeakValueDictionary()


@dataclass(frozen=True)
class HfSource:
    """Where an open-weights model's counter comes from (a recipe's ``target: {kind: hf}``).
    ``check()`` at launch resolves the files and pins their sha256, so that every worker counts
    with the very files the launch found, or fails."""

    LIMIT_KEY = "target.max_length"

    tokenizer: str
    revision: str = "main"
    sha256: dict[str, str] = field(default_factory=dict)
    allow_download: bool = True
    # Set by check() when TRL ships a training version of the model's template: what the masks
    # come from, as TRL's SFTTrainer trains (chat_template.py trl_training_template).
    # The text travels with the source, so every worker renders with the one the launch found.
    training_template: str | None = None
    training_template_name: str | None = None
    # The counter is handed the row written (the trainer's, ``count_row``), not ftprep's example.
    reads_rows: bool = False
    # What the trainer passes the template beside the messages (gpt-oss: reasoning_effort).
    variables: tuple[tuple[str, Any], ...] = ()
    # output.tokens: the counter also hands back the tokenized row, which is what is written.
    tokens: str | None = None
    # Set by check(): tiktoken's BPE gives this tokenizer's ids (byte_bpe.py), so that workers
    # take the fast path without building tokenizers' Tokenizer to compare.
    byte_level: bool | None = None

    @classmethod
    def from_target(cls, target, *, reads_rows: bool = False, variables: tuple[tuple[str, Any], ...] = (),
                    tokens: str | None = None) -> "HfSource":
        """From a target that names the model's tokenizer (hf, gpt-oss, a hosted open model)."""
        return cls(target.tokenizer, target.revision, dict(target.sha256), target.allow_download,
                   reads_rows=reads_rows, variables=variables, tokens=tokens)

    @property
    def label(self) -> str:
        return f"hf:{self.tokenizer}"

    @property
    def trained_from(self) -> str:
        """Where the trained tokens (the loss mask) come from, for stats.json."""
        if self.training_template_name:
            return f"TRL's {self.training_template_name} (trl {installed_version('trl') or 'unknown'}), as SFTTrainer trains with assistant_only_loss"
        return "the model's chat template: its {% generation %} blocks, else each assistant turn's span"

    def _files(self):
        return resolve_tokenizer_files(self.tokenizer, revision=self.revision, sha256=self.sha256,
                                       allow_download=self.allow_download)

    def check(self) -> "HfSource":
        """The files resolved now (TokenizerFilesError: none found), their template compiled
        (ChatTemplateError), and their hashes pinned for the workers."""
        if os.path.exists(self.tokenizer) and not os.path.isabs(self.tokenizer):  # workers may run elsewhere
            return replace(self, tokenizer=os.path.abspath(self.tokenizer)).check()
        files = self._files()
        # The counter compiles the model's template (ChatTemplateError) and finds the fast path.
        counter = HfTokenCounter.from_texts(files.tokenizer_json, files.tokenizer_config, files.chat_template)
        template = ChatTemplate.from_tokenizer_config(json.loads(files.tokenizer_config), files.chat_template)
        pinned = {TOKENIZER_FILE: _digest(files.tokenizer_json), CONFIG_FILE: _digest(files.tokenizer_config)}
        if files.chat_template is not None:
            pinned[TEMPLATE_FILE] = _digest(files.chat_template)
        training = trl_training_template(template.source)
        if training is not None:
            ChatTemplateRenderer(ChatTemplate(training[1], template.special_tokens))
        return replace(self, sha256=pinned, training_template_name=training and training[0],
                       training_template=training and training[1], byte_level=counter.byte_level)

    def load(self, limits: LimitsSpec = LimitsSpec()) -> HfTokenCounter:
        files = self._files()
        counter = HfTokenCounter.from_texts(files.tokenizer_json, files.tokenizer_config,
                                            self.training_template or files.chat_template, limits=limits,
                                            variables=self.variables, byte_level=self.byte_level)
        _LOADED[self._files_key()] = counter
        return counter

    def pieces(self) -> Callable[[list[int]], list[str]]:
        """``ids -> each token's text``: from a counter this process has loaded already for the
        same files where there is one (decoding only reads its tables), else from a new one. The
        report's masks are made at the end of a run, in a worker that counted with it."""
        counter = _LOADED.get(self._files_key())
        return (counter if counter is not None else self.load()).pieces

    def _files_key(self) -> tuple:
        return (self.tokenizer, self.revision, tuple(sorted(self.sha256.items())))
