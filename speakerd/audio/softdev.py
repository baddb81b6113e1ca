"""ALSA software devices: a FIFO as the microphone and a file as the speaker, no sound card needed.

Why: the tests, the demo and the benchmarks drive the real PyAudio/PortAudio/ALSA path, and a
machine in CI has no /dev/snd. ALSA's ``file`` plugin reads capture data from ``infile`` and
writes playback data to ``file``, on top of the ``null`` device.
"""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_ALSA_CONF = "/usr/share/alsa/alsa.conf"


class SoftDevices:
    """Writes ``asound.conf`` with ``speakerd_mic`` and ``speakerd_speaker`` under ``directory``.

    The microphone is a FIFO unless ``mic_infile`` names a file. PortAudio opens every PCM while it
    starts, and opening a FIFO blocks until it has a writer: start the writer (``rig.MicFeeder``)
    before PyAudio, or pass ``mic_infile=Path("/dev/zero")`` for a silent microphone.
    """

    mic_name = "speakerd_mic"
    speaker_name = "speakerd_speaker"

    def __init__(self, directory: Path, *, speaker_rate: int = 24000, mic_infile: Path | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.mic_fifo = mic_infile or directory / "mic.fifo"
        if mic_infile is None and not self.mic_fifo.exists():
            os.mkfifo(self.mic_fifo)
        self.speaker_file = directory / "speaker.raw"
        self.speaker_rate = speaker_rate
        self.conf = directory / "asound.conf"
        self.conf.write_text(self.asoundrc())

    def asoundrc(self) -> str:
        return f"""
pcm.{self.mic_name} {{
    type file
    slave.pcm "speakerd_null"
    file "/dev/null"
    infile "{self.mic_fifo}"
    format "raw"
}}
pcm.{self.speaker_name} {{
    type plug
    slave {{
        pcm "speakerd_speaker_file"
        rate {self.speaker_rate}
        channels 1
        format S16_LE
    }}
}}
pcm.speakerd_speaker_file {{
    type file
    slave.pcm "speakerd_null"
    file "{self.speaker_file}"
    format "raw"
}}
pcm.speakerd_null {{
    type null
}}
"""

    def env(self) -> dict[str, str]:
        return {"ALSA_CONFIG_PATH": f"{SYSTEM_ALSA_CONF}:{self.conf}"}
