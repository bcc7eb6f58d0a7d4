"""OpenAI's open-weight gpt-oss models, trained with TRL like any open-weights model: counted by
default with the model's own chat template (found with its tokenizer files), which is what TRL
tokenizes; ``counting: harmony`` counts with ``openai-harmony``'s renderer instead (its system
message differs from the template's: no ``Current date:`` line, other spacing)."""

from __future__ import annotations

from transforms.targets.harmony_tokens import HarmonySource
from transforms.targets.hf import OpenWeightsTarget
from transforms.targets.hf_tokens import HfSource


class GptOss(OpenWeightsTarget):
    kind = "gpt-oss"
    title = "gpt-oss"
    default_name = "gpt-oss"

    def writes_tokens(self) -> bool:
        return self.spec.counting == "chat_template"  # openai-harmony's renderer: counts only

    def encoding_label(self) -> str:
        return "o200k_harmony" if self.spec.counting == "harmony" else f"hf:{self.spec.tokenizer}"

    def token_source(self) -> HfSource | HarmonySource:
        spec = self.spec
        if spec.counting == "harmony":
            return HarmonySource.from_target(spec, encodings_url=self.encodings_url)
        # The template reads reasoning_effort as TRL passes it (chat_template_kwargs).
        return HfSource.from_target(spec, reads_rows=True, variables=(("reasoning_effort", spec.reasoning_effort),),
                                    tokens=self.tokens)
