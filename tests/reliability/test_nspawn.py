"""The shipped unit under a real systemd (systemd-nspawn --boot): notify, reload, watchdog, credential, 78.

Opt-in (SPEAKERD_NSPAWN=1; root and systemd-container needed). One container is booted for the
module; each test leaves the service in a state the next can start from. The unit file is
systemd/speakerd.service as shipped; ``dropin()`` below writes every test-specific line.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from speakerd_workshop.emulator import EmulatorThread
from speakerd_workshop.rig import MicFeeder
from speakerd_workshop.softdev import SYSTEM_ALSA_CONF, SoftDevices

from tests.reliability.nspawn import (
    HOME_DIRS,
    UNIT,
    Container,
    _under,
    build_root,
    host_binds,
    install_unit,
    nspawn_available,
)
from tests.reliability.process import HANG_HOOK

pytestmark = [pytest.mark.nspawn, pytest.mark.slow]

PROJECT = Path(__file__).resolve().parents[2]
API_KEY = "nspawn-credential-key-" + uuid.uuid4().hex[:12]  # unique, so a journal hit means a leak
ETC = Path("/etc/speakerd")
ASOUND = ETC / "asound.conf"
CA = ETC / "emulator-ca.pem"
WATCHDOG_SEC = 10


def dropin(binds: list[Path]) -> str:
    """Test-only settings: where the code is, soft audio, mock GPIO, a quicker watchdog, a loop hang."""
    exe = Path(sys.prefix) / "bin" / "speakerd"
    lines = [
        "[Service]",
        "ExecStart=",
        f"ExecStart={exe} run --config ${{CONFIGURATION_DIRECTORY}}/speakerd.toml",
        f"Environment=ALSA_CONFIG_PATH={SYSTEM_ALSA_CONF}:{ASOUND}",
        "Environment=SPEAKERD_GPIO__PIN_FACTORY=mock",
        "Environment=GPIOZERO_MOCK_PIN_CLASS=mockpwmpin",
        f"Environment=PYTHONPATH={HANG_HOOK}",  # SIGUSR2 hangs the event loop, for the watchdog test
        f"WatchdogSec={WATCHDOG_SEC}",  # shipped: 20 s
    ]
    hidden = [p for p in binds if _under(p, HOME_DIRS)]
    if hidden:  # e.g. a pyenv interpreter under /root: keep homes hidden except for it
        lines.append("ProtectHome=tmpfs")
    # A checkout under /tmp (CI's clone, say) is hidden by PrivateTmp=: bind just it back in.
    lines += [f"BindReadOnlyPaths={p}" for p in binds if _under(p, [*HOME_DIRS, Path("/tmp"), Path("/var/tmp")])]
    return "\n".join(lines) + "\n"


def config_text(emulator: EmulatorThread, extra: str = "") -> str:
    return f"""
[live]
endpoint = "{emulator.base_url}"
ca_file = "{CA}"
connect_timeout_seconds = 10.0
reconnect_max_seconds = 2.0

[audio]
input_device = "{SoftDevices.mic_name}"
output_device = "{SoftDevices.speaker_name}"
{extra}
[gpio]
enabled = "on"
led_profile = "rgb"
rgb_pins = [5, 6, 13]
button_pin = 17
"""


class Box:
    """The container with the emulator it talks to and the root's config paths."""

    def __init__(self, container: Container, emulator: EmulatorThread, dropin: str) -> None:
        self.c = container
        self.emulator = emulator
        self.dropin = dropin

    def write_config(self, extra: str = "") -> None:
        (self.c.root / ETC.relative_to("/") / "speakerd.toml").write_text(config_text(self.emulator, extra))

    def ensure_running(self) -> dict[str, str]:
        self.write_config()
        if self.c.show("ActiveState")["ActiveState"] != "active":
            self.c.systemctl("reset-failed", UNIT, check=False)
            self.c.systemctl("start", UNIT)
        return self.c.wait_show({"ActiveState": "active", "SubState": "running"},
                                extra=["MainPID", "NRestarts", "StatusText"])


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    why = nspawn_available()
    if why:
        pytest.skip(why)
    work = tmp_path_factory.mktemp("nspawn")
    root = work / "root"
    build_root(root)
    binds = host_binds(PROJECT)

    with EmulatorThread(api_key=API_KEY) as emulator:
        etc = root / ETC.relative_to("/")
        (etc / "credentials").mkdir(parents=True, mode=0o700)
        key = etc / "credentials" / "gemini-api-key"
        key.write_text(API_KEY)
        key.chmod(0o600)
        (root / CA.relative_to("/")).write_bytes(emulator.ca_file.read_bytes())
        # The microphone is a FIFO fed silence in real time from here (the root's /etc is this
        # directory), as a sound card paces capture; /dev/zero would flood the loop with frames.
        # The speaker is a file in the RuntimeDirectory, where ProtectSystem=strict lets it write.
        devices = SoftDevices(etc)
        mic = MicFeeder(devices.mic_fifo)
        devices.mic_fifo = ETC / devices.mic_fifo.name
        devices.speaker_file = Path("/run/speakerd/speaker.raw")
        devices.write()
        text = dropin(binds)
        install_unit(root, PROJECT / "systemd" / UNIT, text)
        b = Box(Container(root, name=f"speakerd-test-{uuid.uuid4().hex[:6]}", binds_ro=binds,
                          log=work / "nspawn.log"), emulator, text)
        b.write_config()
        try:
            b.c.boot()
            yield b
        finally:
            b.c.poweroff()
            mic.close()


def test_start_reaches_ready(box: Box) -> None:
    """Type=notify: `systemctl start` returns once READY=1 arrived, with the daemon's STATUS."""
    got = box.ensure_running()
    assert got["ActiveState"] == "active"
    assert got["SubState"] == "running"
    assert got["StatusText"].startswith("idle"), got
    env = box.c.show("WatchdogUSec", "NotifyAccess", "Type")
    assert env == {"WatchdogUSec": f"{WATCHDOG_SEC}s", "NotifyAccess": "main", "Type": "notify"}


def test_reload_goes_through_reloading(box: Box) -> None:
    """ExecReload sends SIGHUP; the daemon says RELOADING=1, rereads, READY=1: reload -> running."""
    before = box.ensure_running()
    box.write_config("volume = 40\n")
    cursor = box.c.cursor()
    box.c.run(["systemd-analyze", "set-log-level", "debug"])
    try:
        box.c.systemctl("reload", UNIT)
        box.c.wait_show({"ActiveState": "active", "SubState": "running"})
        seen = ""
        for _ in range(50):  # the daemon logs after READY; give the journal a moment to have it
            seen = box.c.journal(f"--after-cursor={cursor}", unit=None)
            if "configuration reloaded" in seen:
                break
            box.c.run(["sleep", "0.2"])
    finally:
        box.c.run(["systemd-analyze", "set-log-level", "info"])
    assert "configuration reloaded from /etc/speakerd/speakerd.toml" in seen, seen
    assert re.search(r"speakerd\.service: Got notification message from PID \d+ \(RELOADING=1", seen), seen
    assert "speakerd.service: Changed running -> reload" in seen, seen
    assert "speakerd.service: Changed reload -> running" in seen, seen
    assert box.c.show("MainPID")["MainPID"] == before["MainPID"]  # reloaded, not restarted


def test_watchdog_restarts_a_hung_daemon(box: Box) -> None:
    """The event loop hangs (its threads go on): no pings, WatchdogSec passes, systemd kills and restarts it."""
    before = box.ensure_running()
    cursor = box.c.cursor()
    box.c.systemctl("kill", "--kill-whom=main", "-s", "SIGUSR2", UNIT)
    after = box.c.wait_show({"NRestarts": str(int(before["NRestarts"]) + 1)}, timeout=WATCHDOG_SEC + 60)
    got = box.c.wait_show({"ActiveState": "active", "SubState": "running"}, extra=["MainPID", "StatusText"])
    assert got["MainPID"] != before["MainPID"]
    log = box.c.journal(f"--after-cursor={cursor}")
    assert "Watchdog timeout" in log, log
    assert "Failed with result 'watchdog'" in log, log
    assert after["NRestarts"] == str(int(before["NRestarts"]) + 1)


def test_api_key_arrives_as_credential_and_stays_out_of_the_journal(box: Box) -> None:
    """LoadCredential= hands the root-only key file to the daemon, which uses it for the emulator."""
    pid = box.ensure_running()["MainPID"]
    assert API_KEY not in box.c.show("Environment")["Environment"]
    # The key's only way in: the credential directory systemd made (no GEMINI_API_KEY is set).
    environ = dict(
        kv.split("=", 1) for kv in box.c.run(["cat", f"/proc/{pid}/environ"]).stdout.split("\0") if "=" in kv
    )
    assert "GEMINI_API_KEY" not in environ and "GOOGLE_API_KEY" not in environ
    cred = f"{environ['CREDENTIALS_DIRECTORY']}/gemini-api-key"
    assert box.c.run(["stat", "-c", "%a %U", cred]).stdout.split() == ["400", "speakerd"]  # its user only
    opened = len(box.emulator.connections)
    speakerctl = Path(sys.prefix) / "bin" / "speakerctl"
    box.c.run([str(speakerctl), "--socket", "/run/speakerd/control.sock", "wake"])
    conn = box.emulator.wait_for(lambda: box.emulator.connections[opened:], timeout=60)[0]
    assert conn.credential == API_KEY
    assert conn.auth in ("header-key", "query-key")
    everything = box.c.run(["journalctl", "--no-pager", "-o", "export"]).stdout
    assert "SYSLOG_IDENTIFIER=speakerd" in everything  # the daemon's own lines are there
    assert API_KEY not in everything


def test_control_socket_serves_its_group_and_refuses_others(box: Box) -> None:
    """The socket is the speakerd group's (born so under Group=): a member is served, others refused.

    Under the unit's system-call filter chown is refused, so the daemon must not need it.
    """
    box.ensure_running()
    speakerctl = [str(Path(sys.prefix) / "bin" / "speakerctl"), "--socket", "/run/speakerd/control.sock"]
    member = box.c.run(["setpriv", "--reuid=1000", "--regid=1000", "--init-groups", *speakerctl, "status"],
                       check=False)
    assert member.returncode == 0 and member.stdout.startswith("state: "), member.stdout + member.stderr
    stranger = box.c.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *speakerctl,
                          "status"], check=False)
    assert stranger.returncode != 0, stranger.stdout
    assert "permission denied" in (stranger.stdout + stranger.stderr).lower(), stranger.stdout + stranger.stderr
    assert "cannot hand it to group" not in box.c.journal(unit=UNIT)


def test_bad_config_exits_78_without_restart(box: Box) -> None:
    """EX_CONFIG: RestartPreventExitStatus=78 ends the unit failed, with one clear journal line."""
    box.ensure_running()
    box.c.systemctl("stop", UNIT)
    box.c.systemctl("reset-failed", UNIT, check=False)
    box.write_config("volume = 170\n")
    try:
        box.c.systemctl("start", UNIT, check=False)
        got = box.c.wait_show({"ActiveState": "failed"},
                              extra=["SubState", "Result", "ExecMainStatus", "ExecMainPID", "NRestarts"])
        assert got["Result"] == "exit-code"
        assert got["ExecMainStatus"] == "78"
        assert got["NRestarts"] == "0"
        lines = box.c.journal(f"_PID={got['ExecMainPID']}", output="cat").strip().splitlines()
        assert len(lines) == 1, lines
        assert "volume" in lines[0] and "Traceback" not in lines[0], lines
    finally:
        box.write_config()
    box.ensure_running()  # the fixed file starts again, as `systemctl start` after an edit would
