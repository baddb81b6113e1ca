"""Opening and closing one WebSocket connection to the Live service, and what goes over it.

Why apart from the session: credentials (API key or a broker token), the SDK's client options
(keepalive), the connect timeout and the teardown of a socket stuck in its close handshake are the
same for every connection; the session decides when to open one and what an ending means.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import websockets
from google import genai
from google.genai import errors, types

from speakerd.config import Config
from speakerd.events import SAMPLE_RATE_IN
from speakerd.live.connect_config import http_options, with_keepalive
from speakerd.live.policy import LiveError, reason_of
from speakerd.live.tokens import TokenError, TokenSource

log = logging.getLogger("speakerd.live")

AUDIO_MIME = f"audio/pcm;rate={SAMPLE_RATE_IN}"


class ConnectFailed(Exception):
    """The connection was not had; ``code``/``reason`` as the service or the network gave them
    (``code`` None: unreachable or no answer in time, which is always worth a retry)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Connector:
    def __init__(self, config: Config, token_source: TokenSource | None,
                 token_error: LiveError | None, base_options: types.HttpOptions | None) -> None:
        self.cfg = config
        self.live = config.settings.live
        self.token_source = token_source
        self._token_error = token_error
        self._base_options = base_options

    async def client(self, *, new_session: bool) -> genai.Client:
        opts = self._base_options
        if self._token_error is not None:
            raise self._token_error
        if self.token_source is not None:
            try:
                token = (await self.token_source.token(new_session=new_session)).name
            except TokenError as e:
                raise LiveError(str(e), fatal=e.fatal) from None
            version = "v1alpha"
            if opts is None:
                opts = http_options(self.live, api_version=version)
            else:
                opts = opts.model_copy(update={"api_version": version})
            return genai.Client(api_key=token, http_options=with_keepalive(opts))
        if self.cfg.api_key is None:
            raise LiveError("no API key: put it in /etc/speakerd/credentials/gemini-api-key "
                            "or set GEMINI_API_KEY", fatal=True)
        if opts is None:
            opts = http_options(self.live)
        return genai.Client(api_key=self.cfg.api_key.get_secret_value(), http_options=with_keepalive(opts))

    async def connect(self, config: types.LiveConnectConfig, *, new_session: bool) -> tuple[Any, Any]:
        """``(session, context manager)`` at setupComplete, or ConnectFailed."""
        client = await self.client(new_session=new_session)
        cm = client.aio.live.connect(model=self.live.model, config=config)
        try:
            session = await asyncio.wait_for(cm.__aenter__(), self.live.connect_timeout_seconds)
        except TimeoutError:
            log.warning("Live service did not answer within %.0f s", self.live.connect_timeout_seconds)
            raise ConnectFailed(None, "no answer") from None
        except errors.APIError as e:
            raise ConnectFailed(e.code, self.redact(reason_of(e))) from None
        except websockets.InvalidStatus as e:
            status = e.response.status_code
            raise ConnectFailed(1008 if status in (401, 403) else 1011, f"HTTP {status}") from None
        except (OSError, websockets.WebSocketException) as e:
            log.warning("cannot reach the Live service: %s", self.redact(reason_of(e)))
            raise ConnectFailed(None, "unreachable") from None
        return session, cm

    @staticmethod
    async def teardown(session: Any, cm: Any) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(cm.__aexit__(None, None, None), 2.0)
        # A close handshake stuck behind unread frames (the receiver stopped at a bad one) would
        # leave the socket and its keepalive task behind: cut it. The old socket must be gone
        # before a resume, or the service refuses the resume (1011).
        ws = getattr(session, "_ws", None)
        if ws is not None and ws.state is not websockets.State.CLOSED:
            ws.transport.abort()

    def redact(self, text: str) -> str:
        secrets = [self.cfg.api_key.get_secret_value()] if self.cfg.api_key is not None else []
        if self.token_source is not None:
            secrets += self.token_source.secret_values
        for secret in secrets:
            if len(secret) >= 4:
                text = text.replace(secret, "**********")
        return text


async def send_item(session: Any, kind: str, value: Any) -> None:
    """One outbox item onto the wire, in the SDK's words."""
    if kind == "audio":
        await session.send_realtime_input(audio=types.Blob(data=value, mime_type=AUDIO_MIME))
    elif kind == "audio_end":
        await session.send_realtime_input(audio_stream_end=True)
    elif kind == "text":
        await session.send_realtime_input(text=value)
    elif kind == "activity_start":
        await session.send_realtime_input(activity_start=types.ActivityStart())
    elif kind == "activity_end":
        await session.send_realtime_input(activity_end=types.ActivityEnd())
    elif kind == "video":
        await session.send_realtime_input(video=types.Blob(data=value, mime_type="image/jpeg"))
    elif kind == "tool_response":
        await session.send_tool_response(function_responses=value)
    elif kind == "interrupt":
        await session.send_client_content(turn_complete=True)
