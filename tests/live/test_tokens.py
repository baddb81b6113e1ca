"""Ephemeral tokens end to end: broker -> emulator's auth_tokens endpoint -> speaker on the
Constrained endpoint (v1alpha), with the real SDK on both sides."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from speakerd_workshop.emulator import EmulatorThread, tts

from speakerd import config
from speakerd.events import SessionState, Transcript, TurnComplete
from speakerd.live import BrokerPolicy, LiveError, LiveSession, ResumptionStore, TokenBroker, ToolRegistry
from speakerd.live import tokens as tokens_mod
from tests.live.test_session import KEY, RATE, SCENARIO, Recorder, say
from tests.sounds import silence

SECRET = "kitchen-secret-0123456789"


@pytest.fixture(scope="module")
def emu(cert_dir: Path) -> Iterator[EmulatorThread]:
    with EmulatorThread(SCENARIO, api_key=KEY, cert_dir=cert_dir, pace=8.0) as e:
        yield e


def devices_file(tmp_path: Path, mode: int = 0o600) -> Path:
    p = tmp_path / "devices.toml"
    p.write_text(f'[devices]\nkitchen = "{SECRET}"\n')
    p.chmod(mode)
    return p


@pytest.fixture
async def broker(tmp_path: Path, emu: EmulatorThread) -> AsyncIterator[tuple[TokenBroker, str]]:
    b = TokenBroker(SecretStr(KEY), tokens_mod.load_devices(devices_file(tmp_path)), config.LiveSettings(),
                    policy=BrokerPolicy(uses=2, expire_seconds=60, new_session_seconds=60),
                    http_options=emu.http_options("v1alpha"))
    port = await b.start("127.0.0.1", 0)
    yield b, f"http://127.0.0.1:{port}"
    await b.stop()


def device_cfg(tmp_path: Path, emu: EmulatorThread, url: str, **broker: Any) -> config.Config:
    settings = config.Settings(
        live=config.LiveSettings(
            endpoint=emu.base_url, ca_file=emu.ca_file, vad=config.VadSettings(silence_duration_ms=300),
            reconnect_max_seconds=0.5, connect_timeout_seconds=3.0,
            token_broker=config.TokenBrokerSettings(url=url, device_id="kitchen", **broker)),
        state=config.StateSettings(directory=tmp_path / "state"),
    )
    return config.Config(settings=settings, path=tmp_path / "x.toml", api_key=None, api_key_source=None)


def device_session(cfg: config.Config, rec: Recorder) -> LiveSession:
    s = cfg.settings
    return LiveSession(cfg, rec, store=ResumptionStore(s.state.directory, s.live.model),
                       tools=ToolRegistry(s.tools, {}))


async def test_speaker_without_the_key_talks_through_a_broker_token(
    tmp_path: Path, emu: EmulatorThread, broker: tuple[TokenBroker, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(tokens_mod.DEVICE_SECRET_ENV, SECRET)
    before = len(emu.connections)
    rec = Recorder()
    session = device_session(device_cfg(tmp_path, emu, broker[1]), rec)
    await session.open()
    conn = emu.connections[before]
    assert (conn.method, conn.api_version, conn.auth) == ("BidiGenerateContentConstrained", "v1alpha",
                                                         "token-header")
    assert conn.credential is not None and conn.credential.startswith("auth_tokens/")
    token = next(t for t in emu.tokens if t.name == conn.credential)
    assert token.uses == 2 and token.uses_left == 1  # bounded uses, one spent
    assert token.setup is not None and token.setup["model"] == "models/gemini-3.8-live"  # locked model
    await say(session, tts.synthesize("what time is it", rate=RATE) + silence(0.6))
    await rec.wait(lambda: rec.of(TurnComplete))
    assert [t.text for t in rec.of(Transcript) if t.role == "user"] == ["what time is it"]
    await session.close()


async def test_token_is_refreshed_before_expiry_and_the_session_resumed(
    tmp_path: Path, emu: EmulatorThread, broker: tuple[TokenBroker, str],
) -> None:
    # A 60 s token refreshed 59.5 s before expiry: the session moves to a new token after ~1 s.
    cfg = device_cfg(tmp_path, emu, broker[1], refresh_before_seconds=59.5)
    source = tokens_mod.TokenSource(cfg.settings.live.token_broker, SecretStr(SECRET))
    rec = Recorder()
    s = cfg.settings
    session = LiveSession(cfg, rec, store=ResumptionStore(s.state.directory, s.live.model),
                          tools=ToolRegistry(s.tools, {}), token_source=source)
    before = len(emu.connections)
    await session.open()
    await rec.wait(lambda: len(emu.connections) >= before + 2 and session.is_open)
    first, second = emu.connections[before : before + 2]
    assert second.resumed_handle is not None and second.credential != first.credential
    assert source.fetches >= 2
    assert not any(e.phase in ("reconnecting", "failed") for e in rec.of(SessionState))  # seamless
    await session.close()


async def test_wrong_device_secret_is_fatal_and_never_shown(
    tmp_path: Path, emu: EmulatorThread, broker: tuple[TokenBroker, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = "not-the-right-secret-123"
    monkeypatch.setenv(tokens_mod.DEVICE_SECRET_ENV, wrong)
    rec = Recorder()
    session = device_session(device_cfg(tmp_path, emu, broker[1]), rec)
    with pytest.raises(LiveError) as e:
        await asyncio.wait_for(session.open(), 10)
    assert e.value.fatal and "kitchen" in str(e.value) and wrong not in str(e.value)
    assert broker[0].minted == 0
    await session.close()


async def test_no_device_secret_is_one_clear_line(tmp_path: Path, emu: EmulatorThread,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tokens_mod.DEVICE_SECRET_ENV, raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    session = device_session(device_cfg(tmp_path, emu, "http://127.0.0.1:9"), Recorder())
    with pytest.raises(LiveError, match="device secret") as e:
        await session.open()
    assert e.value.fatal
    await session.close()


async def test_broker_http_rules(broker: tuple[TokenBroker, str]) -> None:
    b, url = broker
    async with httpx.AsyncClient() as c:
        ok = await c.post(url + "/v1/token", headers={"Authorization": f"Bearer {SECRET}",
                                                      "X-Speakerd-Device": "kitchen"})
        assert ok.status_code == 200 and ok.json()["token"].startswith("auth_tokens/")
        assert ok.json()["expires_in_seconds"] == 60 and ok.headers["cache-control"] == "no-store"
        unknown = await c.post(url + "/v1/token", headers={"Authorization": f"Bearer {SECRET}",
                                                           "X-Speakerd-Device": "garage"})
        assert unknown.status_code == 401 and SECRET not in unknown.text
        assert (await c.get(url + "/v1/token")).status_code == 405
        assert (await c.post(url + "/other")).status_code == 404
    b.policy = BrokerPolicy(uses=1, expire_seconds=60, new_session_seconds=60, max_per_minute=1)
    async with httpx.AsyncClient() as c:
        limited = await c.post(url + "/v1/token", headers={"Authorization": f"Bearer {SECRET}",
                                                           "X-Speakerd-Device": "kitchen"})
    assert limited.status_code == 429


def test_devices_file_rules(tmp_path: Path) -> None:
    with pytest.raises(tokens_mod.DevicesError, match="every user"):
        tokens_mod.load_devices(devices_file(tmp_path, 0o644))
    short = tmp_path / "short.toml"
    short.write_text('[devices]\nkitchen = "short"\n')
    short.chmod(0o600)
    with pytest.raises(tokens_mod.DevicesError, match="at least 16"):
        tokens_mod.load_devices(short)
    assert tokens_mod.main(["--devices", str(short)]) == tokens_mod.EX_USAGE
    assert tokens_mod.main(["--devices", str(devices_file(tmp_path)), "--listen", "nonsense"]) == \
        tokens_mod.EX_USAGE
    with pytest.raises(ValueError, match="20 hours"):
        BrokerPolicy(expire_seconds=21 * 3600)
