"""The ``look`` tool: photos on request, and what the connect config needs while a camera is in use.

Why a tool: by default nothing is captured until the model asks (privacy, tokens); the photos go
out as video frames before the tool's response, so the model sees them when it answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from google.genai import types

from speakerd.camera.sources import CameraError
from speakerd.live.tools import ToolSpec

if TYPE_CHECKING:
    from speakerd.camera.runner import Camera
    from speakerd.config import Settings

LOOK_MAX_PHOTOS = 5
LOOK_SPEC = ToolSpec(
    "look",
    "Take photos with the speaker's camera and look at them. Use it when the user asks what you "
    "can see, or to look at, read or identify something. The photos arrive as video frames, "
    "about one per second.",
    {
        "type": "object",
        "properties": {
            "count": {
                "type": "integer",
                "minimum": 1,
                "maximum": LOOK_MAX_PHOTOS,
                "default": 1,
                "description": "How many photos to take, one per second (1 to 5; default 1).",
            },
        },
    },
)


def look_tool_declaration(*, non_blocking_allowed: bool = True) -> types.FunctionDeclaration:
    """The ``look`` tool. Always BLOCKING: the model must wait for the photos before answering."""
    return types.FunctionDeclaration(
        name=LOOK_SPEC.name,
        description=LOOK_SPEC.description,
        parameters_json_schema=LOOK_SPEC.parameters,
        behavior=types.Behavior.BLOCKING if non_blocking_allowed else None,
    )


def look_handler(
    camera: Camera, send: Callable[[bytes], Awaitable[None]]
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """A ToolRegistry handler for ``look``: frames go out with ``send`` before the tool's response."""

    async def look(count: int | float = 1) -> dict[str, Any]:
        n = max(1, min(LOOK_MAX_PHOTOS, int(count)))
        try:
            sent = await camera.look(n, send)
        except CameraError as e:
            return {"error": str(e)}
        return {"result": f"took {sent} photo{'s' if sent != 1 else ''}; they were sent as video frames"}

    return look


def camera_connect_overrides(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``build_connect_config`` while the camera is in use.

    Why: the service ends audio+video sessions after 2 minutes unless context-window compression
    is on, so it is forced on; the media resolution (tokens per frame) comes from ``live``.
    Empty when the camera is off.
    """
    if not settings.camera.enabled:
        return {}
    return {"force_compression": True, "media_resolution": settings.live.media_resolution}
