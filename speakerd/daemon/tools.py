"""The built-in tools the model may call, bound to this daemon's parts.

Why here: a tool's declaration and argument checks live in ``live/tools.py`` (shared by every
tool); what a built-in tool does touches the daemon's devices, so its handler lives beside them.
Tools from other rooms (the camera's ``look``) plug in as ``(ToolSpec, handler)`` pairs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from speakerd.camera import LOOK_SPEC, look_handler
from speakerd.live import ToolRegistry
from speakerd.live.tools import Handler, ToolSpec

if TYPE_CHECKING:
    from speakerd.daemon.core import Daemon


def make_tools(daemon: Daemon) -> ToolRegistry:
    """The registry for the next session: built-ins plus what every tool provider offers now."""
    extra: dict[str, tuple[ToolSpec, Handler]] = {}
    for provider in daemon.tool_providers:
        extra.update(provider.tools())
    return ToolRegistry(daemon.cfg.settings.tools, builtin_handlers(daemon), extra=extra)


def builtin_handlers(daemon: Daemon) -> dict[str, Handler]:
    async def set_volume(level: int) -> dict[str, Any]:
        player = daemon.parts.player
        if player is None:
            return {"error": "no speaker"}
        player.volume = max(0, min(100, int(level)))
        return {"volume": player.volume}

    async def end_conversation() -> dict[str, Any]:
        return {"result": "the conversation will end after this reply"}

    async def forget_conversation() -> dict[str, Any]:
        daemon.conversation.forget_on_close = True
        return {"result": "the conversation will end after this reply and be forgotten"}

    return {"set_volume": set_volume, "end_conversation": end_conversation,
            "forget_conversation": forget_conversation}


class CameraLook:
    """The camera's ``look`` tool, offered while a camera sends frames only when asked."""

    def __init__(self, daemon: Daemon) -> None:
        self._d = daemon

    def tools(self) -> Mapping[str, tuple[ToolSpec, Handler]]:
        camera = self._d.parts.camera
        if camera is None or self._d.cfg.settings.camera.send != "on_look":
            return {}

        async def send(jpeg: bytes) -> None:
            session = self._d.conversation.session
            if session is not None:
                session.send_video(jpeg)

        return {"look": (LOOK_SPEC, look_handler(camera, send))}
