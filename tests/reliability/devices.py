"""Devices: a microphone or speaker that is missing and comes back, GPIO that cannot work.

How a device "goes": the ALSA configuration is rewritten without it (the microphone) or with its
file in a directory that does not exist (the speaker); ALSA rereads the file, as after a replug.
A FIFO microphone whose writer vanishes is not used: the ``file`` plugin then returns stale data
as fast as it is read, which no real card does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from speakerd_workshop.emulator import EmulatorThread
from speakerd_workshop.rig import API_KEY, MicFeeder
from speakerd_workshop.softdev import SoftDevices

from tests.reliability.harness import (
    CannotSimulate,
    Case,
    answered,
    ask,
    make_rig,
    no_tracebacks,
    statuses,
    truthful,
    wait_status,
    wait_until,
)
from tests.sounds import SCENARIO

ANSWER = SCENARIO.turns[0].reply_text
FAST_REOPEN = "[audio]\nreopen_max_seconds = 1.0\n"


def mic_absent_at_start_then_plugged(workdir: Path) -> str:
    rig = make_rig(workdir, config=FAST_REOPEN)
    rig.emulator = EmulatorThread(scenario=SCENARIO, api_key=API_KEY).start()
    rig._own_emulator = True  # the rig stops what it owns
    rig.devices = SoftDevices(workdir / "alsa", with_mic=False)
    try:
        rig.write_config()
        rig.start()
        assert rig.notify is not None
        rig.wait_state("error", timeout=20)
        rig.notify.wait_for(lambda m: m.get("STATUS", "").startswith("error: "))
        status = rig.ctl("status")
        assert status["state"] == "error" and status["last_error"], status
        assert truthful(rig) == "error"
        error = status["last_error"]
        mark = len(rig.lines)
        rig.devices.with_mic = True
        rig.devices.write()
        rig.wait_log(r"microphone is back", timeout=20, start=mark)
        rig.wait_state("idle", timeout=10, start=mark)
        answered(rig, ask(rig, "what time is it"), ANSWER)
        no_tracebacks(rig)
        return f"READY, state error, STATUS error: {error!r}; plugged in: back to idle, answers"
    finally:
        rig.close()


def pi_default_cannot_capture(workdir: Path) -> str:
    """A Pi as flashed: input_device unset, ALSA's default is the headphone jack (no capture), no
    microphone. Before: an OSError killed the capture thread and systemd restarted the daemon every
    ~25 s. Now: READY, the error state says so, and a microphone plugged in later is used."""
    rig = make_rig(workdir, config=FAST_REOPEN)
    rig.emulator = EmulatorThread(scenario=SCENARIO, api_key=API_KEY).start()
    rig._own_emulator = True  # the rig stops what it owns
    rig.devices = SoftDevices(workdir / "alsa", with_mic=False, playback_only=True)
    try:
        rig.write_config()
        text = rig.config_path.read_text()
        rig.config_path.write_text("\n".join(x for x in text.splitlines() if not x.startswith("input_device")))
        rig.start()
        assert rig.notify is not None and rig.proc is not None
        pid = rig.proc.pid
        rig.wait_state("error", timeout=20)
        status = rig.ctl("status")
        assert status["state"] == "error" and "no microphone found" in status["last_error"], status
        assert truthful(rig) == "error"
        time.sleep(3.0)  # several retries with backoff, and still the same process
        assert rig.proc.poll() is None and rig.proc.pid == pid and rig.notify.count("READY") == 1
        mark = len(rig.lines)
        rig.devices.with_mic = True
        rig.devices.write()
        rig.wait_log(r"using 'speakerd_mic'", timeout=20, start=mark)
        rig.wait_log(r"microphone is back", timeout=20, start=mark)
        rig.wait_state("idle", timeout=10, start=mark)
        answered(rig, ask(rig, "what time is it"), ANSWER)
        no_tracebacks(rig)
        return (f"READY once, state error: {status['last_error']!r}, no restart; "
                "microphone plugged in: used (logged), idle, answers")
    finally:
        rig.close()


def mic_gone_while_running(workdir: Path) -> str:
    """The device is closed by a mute, removed, and opened again by the unmute."""
    with make_rig(workdir, config=FAST_REOPEN) as rig:
        assert rig.devices is not None and rig.notify is not None
        answered(rig, ask(rig, "what time is it"), ANSWER)
        truthful(rig)  # the STATUS= datagram of the last state is read too: it races the log line
        n0 = len(rig.notify.messages)
        m0 = len(rig.lines)
        assert rig.ctl("mute")["ok"]  # in the follow-up window: ends the conversation
        rig.wait_state("muted", timeout=10, start=m0)
        sts = wait_status(rig, "muted", n0)
        assert rig.states(m0)[:1] == ["muted"] and sts[:1] == ["muted"], f"muting showed {rig.states(m0)} / {sts}"
        # Let the mute earcon finish: while the speaker holds PortAudio, device lists are not re-read.
        time.sleep(2.0)
        rig.devices.with_mic = False
        rig.devices.write()
        mark = len(rig.lines)
        n0 = len(rig.notify.messages)
        assert rig.ctl("unmute")["ok"]
        rig.wait_state("error", timeout=20, start=mark)
        wait_status(rig, "error: ", n0)
        rig.devices.with_mic = True
        rig.devices.write()
        rig.wait_log(r"microphone is back", timeout=20, start=mark)
        rig.wait_state("idle", timeout=10, start=mark)
        answered(rig, ask(rig, "and tomorrow"), SCENARIO.turns[1].reply_text)
        no_tracebacks(rig)
        return ("muted mid-conversation straight to 'muted'; device removed, unmute: state error, STATUS "
                "error, retried with backoff; back: idle, answers the next question")


def speaker_gone_and_back(workdir: Path) -> str:
    with make_rig(workdir, config=FAST_REOPEN) as rig:
        assert rig.devices is not None and rig.proc is not None
        real = rig.devices.speaker_file
        rig.devices.speaker_file = workdir / "unplugged" / "speaker.raw"  # its directory does not exist
        rig.devices.write()
        mark = ask(rig, "what time is it")  # the reply still arrives and the state machine moves on
        rig.wait_log(r"^output device: ", timeout=20, start=mark)
        assert rig.ctl("status")["state"] != "error"
        before = len(rig.speaker_pcm())
        rig.devices.speaker_file = real
        rig.devices.write()
        rig.wait_state("idle", timeout=30, start=mark)
        mark2 = ask(rig, "and tomorrow")
        try:
            answered(rig, mark2, SCENARIO.turns[1].reply_text, timeout=20)
        except AssertionError:
            print("\n".join(f"{x.level} {x.message}" for x in rig.lines if x.level != "RAW"))
            raise
        rig.wait_log(r"speaker is back", timeout=20, start=mark)
        wait_until(rig, lambda: len(rig.speaker_pcm()) > before, what="audio in the speaker file")
        no_tracebacks(rig)
        errors = [x.message for x in rig.lines[mark:] if x.level == "ERROR"]
        assert len(errors) == 1, errors  # once per outage, not once per reply or retry
        flaps = sum(1 for x in rig.lines[mark:] if x.message == "speaker is back")
        assert flaps == 1, f"'speaker is back' logged {flaps}x"
        truthful(rig)
        return (f"gone: one line {errors[0]!r}, conversation goes on (replies dropped); back: one "
                f"'speaker is back', reply audio written")


def gpio_auto_unavailable(workdir: Path) -> str:
    with make_rig(workdir, config='[gpio]\nenabled = "auto"\npin_factory = "native"\n') as rig:
        line = rig.wait_log(r"running without LEDs and button|no GPIO pin factory", timeout=10)
        answered(rig, ask(rig, "what time is it"), ANSWER)
        no_tracebacks(rig)
        return f"READY without GPIO: {rig.lines[line].message!r}; answers"


def gpio_on_unavailable(workdir: Path) -> str:
    rig = make_rig(workdir, config='[gpio]\nenabled = "on"\npin_factory = "native"\n')
    rig.emulator = EmulatorThread(scenario=SCENARIO, api_key=API_KEY).start()
    rig._own_emulator = True
    rig.devices = SoftDevices(workdir / "alsa")
    try:
        rig.write_config()
        rig.start(wait_ready=False)
        rc = rig.wait_exit(60)
        assert rc == 78, rc
        errors = [x for x in rig.lines if x.level in ("ERROR", "CRITICAL", "RAW")]
        assert len(errors) == 1, [f"{x.level} {x.message}" for x in errors]
        assert rig.notify is not None and not any(m.get("READY") for m in rig.notify.messages)
        no_tracebacks(rig)
        return f"exit 78, no READY, one line: {errors[0].message!r}"
    finally:
        rig.close()


class SoundServer:
    """A PulseAudio server whose microphone is a FIFO; killing it is a USB microphone pulled out.

    ALSA's ``file`` plugin cannot fail mid-stream, but the ``pulse`` plugin does: with its server gone,
    the next read fails as it does on a card that vanished, and PortAudio raises.
    """

    name = "speakerd_pulse_mic"

    def __init__(self, directory: Path) -> None:
        if shutil.which("pulseaudio") is None:
            raise CannotSimulate("pulseaudio is not installed (scripts/dev-setup.sh installs it)")
        self.directory = directory
        self.runtime = directory / "pulse"
        self.fifo = self.runtime / "mic.fifo"
        self.socket = self.runtime / "native"
        self.proc: subprocess.Popen[bytes] | None = None

    def pcm(self) -> str:
        return f'''
pcm.{self.name} {{
    type pulse
    device "mic"
    server "unix:{self.socket}"
}}
'''

    def start(self) -> None:
        self.runtime.mkdir(parents=True, exist_ok=True)
        self.fifo.unlink(missing_ok=True)  # module-pipe-source makes its own
        env = {"HOME": str(self.runtime), "PULSE_RUNTIME_PATH": str(self.runtime), "PATH": os.environ["PATH"]}
        self.proc = subprocess.Popen(
            ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
             "--disable-shm=yes", "--log-target=stderr",
             "-L", f"module-native-protocol-unix auth-anonymous=1 socket={self.socket}",
             "-L", f"module-pipe-source source_name=mic file={self.fifo} format=s16le rate=16000 channels=1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not (self.socket.exists() and self.fifo.exists()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise CannotSimulate(f"pulseaudio did not start (exit {self.proc.poll()})")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


def mic_pulled_mid_stream(workdir: Path) -> str:
    """The microphone vanishes while its stream is open (the server dies) and comes back later."""
    server = SoundServer(workdir / "sound")
    server.start()
    rig = make_rig(workdir, config=f'{FAST_REOPEN}input_device = "{server.name}"\n')
    rig.emulator = EmulatorThread(scenario=SCENARIO, api_key=API_KEY).start()
    rig._own_emulator = True
    rig.devices = SoftDevices(workdir / "alsa", mic_infile=Path("/dev/zero"))
    rig.devices.extra = server.pcm()
    rig.devices.write()
    rig.mic = MicFeeder(server.fifo)
    try:
        rig.write_config()
        rig.start()
        assert rig.notify is not None
        answered(rig, ask(rig, "what time is it"), ANSWER)
        rig.wait_state("idle", timeout=30)
        mark = len(rig.lines)
        n0 = len(rig.notify.messages)
        rig.mic.close()
        server.kill()  # pulled out while the stream is open and being read
        line = rig.wait_log(r"^input device: microphone stopped working", timeout=20, start=mark)
        rig.wait_state("error", timeout=20, start=mark)
        assert truthful(rig) == "error"
        sts = statuses(rig, n0)
        assert any(s.startswith("error: ") for s in sts), sts
        time.sleep(2.0)  # a few reopen attempts with the server still gone: said once, not per attempt
        faults = [x.message for x in rig.lines[mark:] if x.level == "ERROR"]
        assert len(faults) == 1, faults
        server.start()  # plugged back in
        rig.mic = MicFeeder(server.fifo)
        rig.wait_log(r"^microphone is back", timeout=30, start=mark)
        rig.wait_state("idle", timeout=10, start=mark)
        truthful(rig)
        answered(rig, ask(rig, "and tomorrow"), SCENARIO.turns[1].reply_text)
        no_tracebacks(rig)
        return (f"one line {rig.lines[line].message!r}; state error, STATUS error, LEDs error; "
                f"reopened with backoff, back by itself: idle, answers the next question")
    finally:
        rig.close()
        server.kill()


CASES = [
    Case("mic-absent-at-start", "devices", "no microphone at start, plugged in later",
         "READY; error state and STATUS; recovers by itself; answers", mic_absent_at_start_then_plugged),
    Case("pi-default-cannot-capture", "devices", "input_device unset, ALSA default cannot capture, no microphone",
         "READY; error state 'no microphone found'; no restart; a microphone plugged in is used; answers",
         pi_default_cannot_capture),
    Case("mic-gone-while-running", "devices", "microphone removed (seen at the next open)",
         "error state and STATUS; recovers by itself; answers", mic_gone_while_running),
    Case("mic-pulled-mid-stream", "devices", "microphone vanishes while being read (sound server killed)",
         "one error line; error state, STATUS, LEDs; recovers by itself when back; answers",
         mic_pulled_mid_stream),
    Case("speaker-gone-and-back", "devices", "speaker unavailable, then back",
         "one error line; conversation goes on; plays again when back", speaker_gone_and_back),
    Case("gpio-auto-unavailable", "devices", "gpio.enabled=auto, pin factory cannot work",
         "warning; runs without LEDs and button", gpio_auto_unavailable),
    Case("gpio-on-unavailable", "devices", "gpio.enabled=on, pin factory cannot work",
         "one error line, exit 78, no READY", gpio_on_unavailable),
]
