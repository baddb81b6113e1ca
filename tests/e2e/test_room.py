"""The real daemon in the rig's room: its own voice comes back at +10 dB over a person.

The speaker's echo reaches the microphone through a room (device delay, reverberation, clock drift,
clipping, noise) and the emulator decides what is speech with a neural VAD, as the service does.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from speakerd_workshop.emulator import Scenario
from speakerd_workshop.rig import Rig
from speakerd_workshop.room import Room

from speakerd.audio.echo import EchoSettings
from tests.sounds import silence, speech, wake

pytestmark = pytest.mark.slow

LONG_REPLY = (
    "The weather tomorrow will be mild with a light wind from the west. In the morning there may be "
    "some fog along the coast and near the river. By the afternoon the clouds will clear and the sun "
    "will come out for a while. If you are going out in the evening you might want to take a jacket."
)
SCENARIO = Scenario.from_dict({"default_reply": LONG_REPLY, "turns": [
    {"user_transcript": "what is the weather", "reply_text": LONG_REPLY},
    {"user_transcript": "stop", "reply_text": "All right."},
]})
ROOM = Room(echo_db=10.0, delay_ms=60.0, rt60=0.4, drift_ppm=80.0)


def _rig(tmp_path: Path, echo: EchoSettings) -> Rig:
    return Rig(tmp_path / "rig", scenario=SCENARIO, room=ROOM, echo=echo,
               config="[conversation]\nfollow_up_seconds = 4.0\n")


def test_a_long_reply_at_plus_10_db_is_not_cut_by_its_own_echo(tmp_path: Path) -> None:
    with _rig(tmp_path, EchoSettings()) as rig:  # the defaults
        assert rig.mic is not None and rig.emulator is not None
        mark = len(rig.lines)
        rig.mic.say(wake() + speech("what is the weather?") + silence(1.0))
        s = rig.wait_state("speaking", timeout=40, start=mark)
        end = rig.wait_log(r"^state (listening|idle)$", timeout=60, start=s + 1)
        played = rig.lines[end].at - rig.lines[s].at
        text = "\n".join(x.message for x in rig.lines[s:end + 1])
        assert "interrupted" not in text, rig.log_text()
        assert played > 12.0, f"the reply stopped after {played:.1f} s:\n{rig.log_text()}"
        time.sleep(3.0)  # its echo must not have become the next user turn either
        assert rig.states(s).count("speaking") == 1, rig.log_text()
        heard = [x.message for x in rig.lines[mark:] if x.message.startswith("you: ")]
        assert heard == ["you: what is the weather"], rig.log_text()  # the echo never became a user turn


def test_a_person_talking_over_it_interrupts_it(tmp_path: Path) -> None:
    # Voice barge-in: the canceller and the residual-echo gate (half duplex, the default, cannot hear them).
    with _rig(tmp_path, EchoSettings(canceller="webrtc", gate="residual")) as rig:
        assert rig.mic is not None
        mark = len(rig.lines)
        rig.mic.say(wake() + speech("what is the weather?") + silence(1.0))
        s = rig.wait_state("speaking", timeout=40, start=mark)
        time.sleep(2.5)
        rig.mic.say(speech("stop, that is enough, thank you") + silence(1.0))
        i = rig.wait_log(r"^interrupted by voice$", timeout=15, start=s)
        assert rig.lines[i].at - rig.lines[s].at < 12.0  # long before the reply would have ended


def test_the_stop_word_is_heard_over_the_reply_with_the_defaults(tmp_path: Path) -> None:
    """Half duplex sends the service zeros while the speaker plays; the stop word hears what the
    canceller left, so it still ends the conversation over the speaker's own voice."""
    from speakerd_workshop.emulator.tts import synthesize

    # At 0 dB. At +10 dB AEC3's double-talk handling suppresses the person too (docs/audio.md).
    room = Room(echo_db=0.0, delay_ms=60.0, rt60=0.4, drift_ppm=80.0)
    rig = Rig(tmp_path / "rig", scenario=SCENARIO, room=room, echo=EchoSettings(),
              config='[conversation]\nfollow_up_seconds = 4.0\n[wakeword]\nstop_model = "alexa"\n')
    with rig:
        assert rig.mic is not None
        mark = len(rig.lines)
        rig.mic.say(wake() + speech("what is the weather?") + silence(1.0))
        s = rig.wait_state("speaking", timeout=40, start=mark)
        time.sleep(2.0)
        rig.mic.say(synthesize("alexa", rate=16000, voice="en") + silence(1.0))
        rig.wait_log(r"^stop word alexa", timeout=20, start=s)
        rig.wait_state("idle", timeout=10, start=s)
        assert "interrupted by voice" not in "\n".join(x.message for x in rig.lines[s:])
