"""What each Live model accepts (reference live-protocol.md section 7).

The service refuses a setup its model cannot honour by closing the socket; the emulator does the
same, so the session client's per-model option mapping is tested against the same rules.
"""

from __future__ import annotations

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


MODELS: dict[str, ModelRules] = {
    r.name: r
    for r in (
        ModelRules("gemini-3.8-live", proactive_audio="always", non_blocking_default=True),
        ModelRules(
            "gemini-3.8-live-extended-thinking",
            thinking=frozenset({"thinkingLevel", "includeThoughts"}),
            proactive_audio="always",
            non_blocking_default=True,
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
        ModelRules("gemini-3.5-live-translate-preview", tools=False, system_instruction=False),
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
