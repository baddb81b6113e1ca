"""ALSA software devices: a FIFO as the microphone and a file as the speaker, no sound card needed.

Why: the tests, the demo and the benchmarks drive the real PyAudio/PortAudio/ALSA path, and a
machine in CI has no /dev/snd. ALSA's ``file`` plugin reads capture data from ``infile`` and
writes playback data to ``file``, on top of the ``null`` device. ``null`` has no clock, so a
plain file speaker takes audio as fast as it is written; a FIFO speaker drained in real time by
``SpeakerSink`` paces playback like a sound card would.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

SYSTEM_ALSA_CONF = "/usr/share/alsa/alsa.conf"
F_SETPIPE_SZ = 1031


class SoftDevices:
    """Writes ``asound.conf`` with ``speakerd_mic`` and ``speakerd_speaker`` under ``directory``.

    The microphone is a FIFO unless ``mic_infile`` names a file. PortAudio opens every PCM while it
    starts, and opening a FIFO blocks until it has a writer: start the writer (``rig.MicFeeder``)
    before PyAudio, or pass ``mic_infile=Path("/dev/zero")`` for a silent microphone. The speaker
    is converted to ``speaker_rate`` mono by ALSA's ``plug``; with ``speaker_fifo`` it is a FIFO
    that a ``SpeakerSink`` must drain (start it before PyAudio too).

    ``playback_only=True`` is a Raspberry Pi's own sound: ALSA's ``default`` and the speaker can
    only play (card 0 is the headphone jack), so the microphone, if any, is the only device that
    can capture; without it nothing can.
    """

    mic_name = "speakerd_mic"
    speaker_name = "speakerd_speaker"

    def __init__(self, directory: Path, *, speaker_rate: int = 24000, mic_infile: Path | None = None,
                 speaker_fifo: bool = False, with_mic: bool = True, playback_only: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.mic_fifo = mic_infile or directory / "mic.fifo"
        if mic_infile is None and not self.mic_fifo.exists():
            os.mkfifo(self.mic_fifo)
        self.speaker_file = directory / ("speaker.fifo" if speaker_fifo else "speaker.raw")
        if speaker_fifo and not self.speaker_file.exists():
            os.mkfifo(self.speaker_file)
        self.speaker_rate = speaker_rate
        self.with_mic = with_mic
        self.playback_only = playback_only
        self.extra = ""  # more PCM definitions, e.g. a microphone behind a sound server
        self.conf = directory / "asound.conf"
        self.write()

    def write(self) -> None:
        """(Re)write the configuration: ALSA rereads it when it changes, as a replugged card."""
        tmp = self.conf.with_suffix(".tmp")
        tmp.write_text(self.asoundrc())
        tmp.replace(self.conf)

    def asoundrc(self) -> str:
        mic = f"""
pcm.{self.mic_name} {{
    type file
    slave.pcm {{ type null }}
    file "/dev/null"
    infile "{self.mic_fifo}"
    format "raw"
}}
""" if self.with_mic else ""
        if self.playback_only:  # nested, unnamed PCMs: PortAudio lists only the named ones
            return mic + self.extra + f"""
pcm.!default {{
    type asym
    playback.pcm "{self.speaker_name}"
}}
pcm.{self.speaker_name} {{
    type asym
    playback.pcm {{
        type plug
        slave {{
            pcm {{
                type file
                slave.pcm {{ type null }}
                file "{self.speaker_file}"
                format "raw"
            }}
            rate {self.speaker_rate}
            channels 1
            format S16_LE
        }}
    }}
}}
"""
        return mic + self.extra + f"""
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


class SpeakerSink:
    """Drains a FIFO speaker at ``rate`` s16 mono samples per second, keeping what it read.

    The pipe is shrunk to one page so little hides in it; ``received`` is every byte, and
    ``arrivals`` the byte count at each read with its monotonic time.
    """

    def __init__(self, fifo: Path, rate: int, speed: float = 1.0,
                 on_played: Callable[[bytes], None] | None = None) -> None:
        self.fifo = fifo
        self.on_played = on_played  # every byte the speaker emits, silence included (the room hears it)
        self.bytes_per_second = rate * 2 * speed
        self.received = bytearray()
        self.arrivals: list[tuple[float, int]] = []
        # (monotonic, bytes) each time a sample was due and the FIFO was empty: a sound card's underrun
        # (a late read by this thread is not one: the audio waits in the FIFO)
        self.silences: list[tuple[float, int]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._fd, F_SETPIPE_SZ, 4096)
        self._thread = threading.Thread(target=self._run, name="speaker-sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        taken = 0
        while not self._stop.is_set():
            allowed = int((time.monotonic() - start) * self.bytes_per_second) - taken
            allowed -= allowed % 2
            if allowed > 0:
                try:
                    data = os.read(self._fd, allowed)
                except BlockingIOError:
                    data = b""
                except OSError:
                    return
                if data:
                    with self._lock:
                        self.received += data
                        self.arrivals.append((time.monotonic(), len(self.received)))
                    taken += len(data)
                    if self.on_played is not None:
                        self.on_played(data)
                else:  # nothing to play: the clock runs on, as a sound card's would
                    self.silences.append((time.monotonic(), allowed))
                    taken += allowed
                    if self.on_played is not None:
                        self.on_played(bytes(allowed))
            time.sleep(0.002)

    def snapshot(self) -> bytes:
        with self._lock:
            return bytes(self.received)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self._fd)
