"""What each Live model accepts (reference live-protocol.md section 7).

The service refuses a setup its model cannot honour by closing the socket; the emulator does the
same, so the session client's per-model option mapping is tested against the same rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from speakerd_workshop.emulator.wire import Json


@dataclass(frozen=True)
class ModelRules:
    name: str
    thinking: frozenset[str] = frozenset()  # accepted thinkingConfig keys; empty: none at all
    affective_dialog: bool = False
    proactive_audio: str = "no"  # "no": rejected; "yes": true or false; "always": false rejected
    non_blocking_default: bool = False  # async function calling is the default behaviour
    non_blocking_allowed: bool = True
    multi_part: bool = True  # several parts (audio + transcript) in one server message
    client_content_anytime: bool = True  # False: only to seed history, before realtime input
    tools: bool = True
    system_instruction: bool = True
    text_input: bool = True  # realtimeInput.text and clientContent
    translation: bool = False  # generationConfig.translationConfig
    # clientContent{turnComplete} with no turns stops the reply and starts none (3.8); elsewhere
    # it starts a generation from what was sent so far
    empty_turn_complete_stops: bool = False


MODELS: dict[str, ModelRules] = {
    r.name: r
    for r in (
        ModelRules("gemini-3.8-live", proactive_audio="always", non_blocking_default=True,
                   empty_turn_complete_stops=True),
        ModelRules(
            "gemini-3.8-live-extended-thinking",
            thinking=frozenset({"thinkingLevel", "includeThoughts"}),
            proactive_audio="always",
            non_blocking_default=True,
            empty_turn_complete_stops=True,
        ),
        ModelRules(
            "gemini-3.1-flash-live-preview",
            thinking=frozenset({"thinkingLevel", "includeThoughts"}),
            non_blocking_allowed=False,
            client_content_anytime=False,
        ),
        ModelRules(
            "gemini-2.5-flash-native-audio-preview-12-2025",
            thinking=frozenset({"thinkingBudget", "includeThoughts"}),
            affective_dialog=True,
            proactive_audio="yes",
            multi_part=False,
        ),
        ModelRules(
            "gemini-2.5-flash-native-audio-preview-09-2025",
            thinking=frozenset({"thinkingBudget", "includeThoughts"}),
            affective_dialog=True,
            proactive_audio="yes",
            multi_part=False,
        ),
        ModelRules(
            "gemini-3.5-live-translate-preview",
            tools=False,
            system_instruction=False,
            text_input=False,
            translation=True,
        ),
    )
}


def not_found_reason(model: str, api_version: str) -> str:
    return (
        f"models/{model} is not found for API version {api_version}, or is not supported for "
        "bidiGenerateContent. Call ListModels to see the list of available models"
    )


def rejection(rules: ModelRules, setup: Json) -> str | None:
    """Why ``rules.name`` refuses this setup (a 1008 reason), or None when it accepts it."""
    gen: Json = setup.get("generationConfig") or {}
    bad: str | None = None
    modalities = [str(m).upper() for m in gen.get("responseModalities") or []]
    thinking: Any = gen.get("thinkingConfig")
    proactive = (setup.get("proactivity") or {}).get("proactiveAudio")
    if any(m != "AUDIO" for m in modalities):
        bad = "responseModalities " + ",".join(modalities)
    elif thinking is not None and (
        not rules.thinking or any(k not in rules.thinking for k in (thinking or {}))
    ):
        bad = f"thinkingConfig {sorted(thinking or {})}"
    elif gen.get("enableAffectiveDialog") is not None and not rules.affective_dialog:
        bad = "enableAffectiveDialog"
    elif proactive is not None and (
        rules.proactive_audio == "no" or (rules.proactive_audio == "always" and proactive is False)
    ):
        bad = f"proactivity.proactiveAudio={str(proactive).lower()}"
    elif setup.get("tools") and not rules.tools:
        bad = "tools"
    elif setup.get("systemInstruction") and not rules.system_instruction:
        bad = "systemInstruction"
    elif gen.get("translationConfig") is not None and not rules.translation:
        bad = "translationConfig"
    elif not rules.non_blocking_allowed and any(
        d.get("behavior") == "NON_BLOCKING" for d in declarations(setup)
    ):
        bad = "functionDeclarations.behavior=NON_BLOCKING"
    if bad is None:
        return None
    return f"{bad} is not supported by models/{rules.name}."


def declarations(setup: Json) -> list[Json]:
    """Every function declaration in the setup's tools."""
    out: list[Json] = []
    for tool in setup.get("tools") or []:
        if isinstance(tool, dict):
            out.extend(d for d in tool.get("functionDeclarations") or [] if isinstance(d, dict))
    return out


# The prebuilt voices of the native-audio Live models (ai.google.dev speech generation voice list).
PREBUILT_VOICES = frozenset(
    {
        "Zephyr", "Puck", "Charon", "Kore", "Fenrir", "Leda", "Orus", "Aoede", "Callirrhoe", "Autonoe",
        "Enceladus", "Iapetus", "Umbriel", "Algieba", "Despina", "Erinome", "Algenib", "Rasalgethi",
        "Laomedeia", "Achernar", "Alnilam", "Schedar", "Gacrux", "Pulcherrima", "Achird",
        "Zubenelgenubi", "Vindemiatrix", "Sadachbia", "Sadaltager", "Sulafat",
    }
)  # fmt: skip
_VOICES_FOLDED = {v.lower() for v in PREBUILT_VOICES}
# A BCP-47 tag as the service takes it: language, optional script, optional region ("en-US", "cmn-CN").
_LANGUAGE_CODE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?$")
# Tools the Gemini API has but the Live API refuses.
UNSUPPORTED_TOOLS = ("codeExecution", "urlContext")
INVALID_ARGUMENT = "Request contains an invalid argument."
NOT_SUPPORTED = "Operation is not implemented, or supported, or enabled."


def invalid_argument(setup: Json) -> str | None:
    """Why the service would refuse this setup as an invalid argument (close 1007), or None."""
    speech: Json = (setup.get("generationConfig") or {}).get("speechConfig") or {}
    voice = ((speech.get("voiceConfig") or {}).get("prebuiltVoiceConfig") or {}).get("voiceName")
    if voice is not None and str(voice).lower() not in _VOICES_FOLDED:
        return f"{INVALID_ARGUMENT} Unknown prebuilt voice {str(voice)[:30]!r}."
    language = speech.get("languageCode")
    if language is not None and not _LANGUAGE_CODE.match(str(language)):
        return f"{INVALID_ARGUMENT} Invalid language code {str(language)[:20]!r}."
    return None


def unsupported_tool(setup: Json) -> str | None:
    """The reason a tool the Live API does not offer is refused (close 1008), or None."""
    for tool in setup.get("tools") or []:
        if isinstance(tool, dict) and any(k in tool for k in UNSUPPORTED_TOOLS):
            return NOT_SUPPORTED
    return None


def search_declared(setup: Json) -> bool:
    """Whether the client declared Google Search grounding (``googleSearch`` or the older ``googleSearchRetrieval``)."""
    return any(
        isinstance(t, dict) and ("googleSearch" in t or "googleSearchRetrieval" in t) for t in setup.get("tools") or []
    )
