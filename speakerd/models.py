"""What each Live model accepts: the one table ``check-config`` and the connect config both read.

Why a table: the service closes the connection (1008) when a model is sent an option it does not
accept (reference live-protocol.md §7), so options the configured model rejects are left out with
a warning, and ``check-config`` says so before the first conversation. A model not listed is
accepted with a warning, and every option is sent as configured, so a new release does not need a
new speakerd.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The languages the Live API's models speak (BCP-47), as Google's Live API language page lists them.
LIVE_LANGUAGES = frozenset({
    "ar-EG", "bn-BD", "de-DE", "en-IN", "en-US", "es-US", "fr-FR", "hi-IN", "id-ID", "it-IT", "ja-JP", "ko-KR",
    "mr-IN", "nl-NL", "pl-PL", "pt-BR", "ro-RO", "ru-RU", "ta-IN", "te-IN", "th-TH", "tr-TR", "uk-UA", "vi-VN",
})


@dataclass(frozen=True)
class ModelOptions:
    affective_dialog: bool = False
    proactive_audio: Literal["no", "yes", "always"] = "no"  # always: `false` is rejected
    thinking: Literal["level", "budget", "any"] | None = None
    non_blocking_tools: bool = True
    languages: frozenset[str] = LIVE_LANGUAGES  # empty: any well-formed code is passed on
    # clientContent{turnComplete} stops the model's reply (3.8): a button interrupt tells the
    # service too, so its context does not keep a reply nobody heard. 3.1 takes clientContent only
    # to seed history; on 2.5 it would start a new generation.
    client_interrupt: bool = False


MODELS: dict[str, ModelOptions] = {
    "gemini-3.8-live": ModelOptions(proactive_audio="always", client_interrupt=True),
    "gemini-3.8-live-extended-thinking": ModelOptions(proactive_audio="always", thinking="level",
                                                      client_interrupt=True),
    "gemini-3.1-flash-live-preview": ModelOptions(thinking="level", non_blocking_tools=False),
    # Google's Live tools page (checked 2026-12): 2.5 Flash Live calls functions synchronously and
    # asynchronously (NON_BLOCKING); 3.1 Flash Live synchronously only.
    "gemini-2.5-flash-native-audio-preview-12-2025": ModelOptions(
        affective_dialog=True, proactive_audio="yes", thinking="budget"),
}
UNKNOWN = ModelOptions(affective_dialog=True, proactive_audio="yes", thinking="any", languages=frozenset())


def _name(model: str) -> str:
    return model.removeprefix("models/")


def known(model: str) -> bool:
    return _name(model) in MODELS


def options_for(model: str) -> ModelOptions:
    return MODELS.get(_name(model), UNKNOWN)
