"""``speakerd demo``: the whole daemon on a machine with no Pi, no sound card and no API key.

Why a real run and not a recording: the demo is the same process systemd would start, talking
to the local Live emulator over TLS, hearing a synthesised voice through an ALSA software
microphone, lighting mock GPIO pins and playing into a file. If the demo works, the parts work.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
import wave
from collections.abc import Sequence
from pathlib import Path

from speakerd.events import SAMPLE_RATE_IN
from speakerd_workshop.emulator import Scenario
from speakerd_workshop.emulator.tts import synthesize
from speakerd_workshop.rig import LogLine, Rig
from speakerd_workshop.room import Room

SCENARIO = {
    "default_reply": "I'm the local emulator. That's all for this demo.",
    "turns": [
        {
            "user_transcript": "what time is it",
            "tool_calls": [{"name": "current_time", "args": {}}],
            "after_tool_text": "It is {result}.",
        },
        {
            "user_transcript": "tell me a long story",
            "reply_text": (
                "Once upon a time, in a small house by the sea, there lived a tiny speaker who "
                "loved to talk. Every morning it told the weather, every evening it read stories, "
                "and every night it listened quietly for its name."
            ),
        },
        {"user_transcript": "set a timer for 3 seconds called tea",
         "tool_calls": [{"name": "set_timer", "args": {"seconds": 3, "label": "tea"}}],
         "after_tool_text": "Your tea timer is set."},
    ],
    # What the speaker asks the model to say word for word (a timer's label, an announcement).
    "rules": [{"match": "word for word, and say nothing else: (?P<text>.+)$", "reply_text": "{text}"}],
}

INTERESTING = ("state ", "you: ", "speaker: ", "tool ", "wake word", "Live session", "button", "timers: ",
               "conversation ended", "interrupted", "wake to streaming", "speech end to first audio",
               "interrupt to silence", "speakerd ready")


def _silence(seconds: float) -> bytes:
    return b"\0\0" * int(seconds * SAMPLE_RATE_IN)


def _speech(text: str) -> bytes:
    return synthesize(text, rate=SAMPLE_RATE_IN)


class Timeline:
    """Prints the daemon's interesting log lines as they happen, with times from the start."""

    def __init__(self, rig: Rig, t0: float) -> None:
        self.rig = rig
        self.t0 = t0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def note(self, text: str) -> None:
        print(f"  {time.monotonic() - self.t0:6.2f} s  ── {text}", flush=True)

    def _show(self, line: LogLine) -> None:
        msg = line.message
        if line.level in ("ERROR", "WARNING") or any(msg.startswith(p) or p in msg for p in INTERESTING):
            if msg.startswith("state "):
                msg = f"LED/STATUS → {msg[6:]}"
            print(f"  {line.at - self.t0:6.2f} s  {msg}", flush=True)

    def _run(self) -> None:
        seen = 0
        while not self._stop.is_set():
            lines = self.rig.lines[seen:]
            seen += len(lines)
            for line in lines:
                self._show(line)
            time.sleep(0.05)

    def close(self) -> None:
        time.sleep(0.2)
        self._stop.set()
        self._thread.join(timeout=2)


def _write_wav(raw: bytes, rate: int, path: Path) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(raw)


def run_demo(out: Path, room: Room | None = None) -> int:
    if shutil.which("espeak-ng") is None:
        print("speakerd demo: espeak-ng is needed to make the voice (apt install espeak-ng)", file=sys.stderr)
        return 1
    if out.exists():
        shutil.rmtree(out)
    print(f"speakerd demo: the daemon, the Live emulator, a synthetic voice and mock GPIO; output in {out}/")
    config = "[conversation]\nfollow_up_seconds = 5.0\n[live.vad]\nsilence_duration_ms = 600\n"
    if room is not None:
        print(f"room: the speaker's echo at {room.echo_db:+.0f} dB to the person, {room.delay_ms:.0f} ms device "
              f"delay, RT60 {room.rt60:.1f} s, {room.drift_ppm:+.0f} ppm drift")
    with Rig(out, scenario=Scenario.from_dict(SCENARIO), config=config, room=room) as rig:
        assert rig.mic is not None and rig.ready_at is not None
        tl = Timeline(rig, rig.started_at)
        tl.note(f"daemon READY after {rig.ready_at - rig.started_at:.2f} s (sd_notify READY=1)")
        seen = len(rig.emulator.connections) if rig.emulator else 0
        tl.note(f"emulator has seen {seen} connections while idle")

        tl.note('mic: "hey jarvis … what time is it?"')
        rig.mic.say(_silence(1.0) + _speech("hey jarvis") + _silence(0.5) + _speech("what time is it?"))
        rig.wait_state("speaking", timeout=40)
        rig.wait_state("listening", timeout=40, start=len(rig.lines) - 1)

        tl.note('mic (follow-up, no wake word): "tell me a long story"')
        mark = len(rig.lines)
        rig.mic.say(_silence(0.5) + _speech("tell me a long story"))
        rig.wait_state("speaking", timeout=40, start=mark)
        time.sleep(2.5)
        tl.note("button: a short press over the reply")
        mark = len(rig.lines)
        rig.ctl("press", 0.1)
        rig.wait_state("listening", timeout=30, start=mark)

        tl.note('mic (follow-up): "set a timer for 3 seconds called tea"')
        mark = len(rig.lines)
        rig.mic.say(_silence(0.3) + _speech("set a timer for 3 seconds called tea"))
        ringing = rig.wait_state("alarm", timeout=60, start=mark)
        time.sleep(1.5)
        tl.note("button: a short press stops the alarm")
        rig.ctl("press", 0.1)
        said = rig.wait_log(r"^speaker: Timer: tea\.", timeout=40, start=ringing)
        rig.wait_state("idle", timeout=40, start=said)  # the label's own short session has ended
        tl.note(f"speakerctl status: {rig.ctl('status').get('metrics')}")
        rc = rig.stop()
        tl.note(f"daemon stopped (exit {rc}, sd_notify STOPPING=1)")
        tl.close()
        assert rig.devices is not None
        raw, rate = rig.speaker_pcm(), rig.devices.speaker_rate
        emulator_audio = rig.emulator.received_audio() if rig.emulator else b""
    wav = out / "speaker.wav"
    _write_wav(raw, rate, wav)
    print(f"\nspeaker: {len(raw) / 2 / rate:.1f} s of audio written to {wav}")
    print(f"emulator: received {len(emulator_audio) / 2 / SAMPLE_RATE_IN:.1f} s of microphone audio, "
          "none of it before the wake word")
    return 0 if rc == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speakerd demo", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="where to put the files (default: demo-out)")
    p.add_argument("--room", type=float, nargs="?", const=10.0, default=None, metavar="ECHO_DB",
                   help="put the speaker and the microphone in a room: the speaker's echo ECHO_DB louder "
                        "than the person (default +10 dB)")
    args = p.parse_args(argv)
    try:
        return run_demo(args.out.resolve(), Room(echo_db=args.room) if args.room is not None else None)
    except TimeoutError as e:
        print(f"speakerd demo: the daemon did not do what was expected: {e}", file=sys.stderr)
        return 1
