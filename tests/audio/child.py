"""Running audio code in a child process: ALSA reads its configuration once per process, and each
test needs its own software devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# Sets up ``dev`` (SoftDevices under D/alsa) from CHILD_ARGS: speaker_rate, speaker_fifo, mic ("fifo",
# "zero" or a file name in D), with_mic, playback_only. Imports what the tests use.
PRELUDE = """
import asyncio, json, os, sys, time
from pathlib import Path
import numpy as np
from speakerd_workshop.softdev import SoftDevices, SpeakerSink
ARGS = json.loads(os.environ["CHILD_ARGS"]); D = Path(os.environ["CHILD_DIR"])
_mic = ARGS.get("mic", "fifo")
dev = SoftDevices(D / "alsa", speaker_rate=int(ARGS.get("speaker_rate", 24000)),
                  mic_infile=None if _mic == "fifo" else Path("/dev/zero") if _mic == "zero" else D / _mic,
                  speaker_fifo=ARGS.get("speaker_fifo") == "True", with_mic=ARGS.get("with_mic") != "False",
                  playback_only=ARGS.get("playback_only") == "True")
os.environ.update(dev.env())
from speakerd import config
from speakerd.audio import Capture, Player, PrerollBuffer
from speakerd_workshop.rig import MicFeeder
def report(**kw):
    print(json.dumps(kw))
"""


def run_child(code: str, tmp_path: Path, **kw: Any) -> dict[str, Any]:
    """Run PRELUDE + ``code`` (which calls report(...) last) with soft devices set up by ``kw``."""
    script = tmp_path / "child.py"
    script.write_text(PRELUDE + textwrap.dedent(code))
    env = {**os.environ, "CHILD_ARGS": json.dumps({k: str(v) for k, v in kw.items()}),
           "CHILD_DIR": str(tmp_path)}
    res = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))
