"""Running an audio scene (tests/audio/scenes.py) in a child process: ALSA and PortAudio read their
configuration once per process, and each test needs its own software devices.

``run_child(SCENE, tmp_path, **kw)`` runs ``python -m tests.audio.child SCENE``. The child sets up the
software devices under ``tmp_path/alsa`` and the environment that points at them from ``kw`` first,
and only then imports the scenes (and with them PyAudio). Its last line of output is the scene's
report as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_child(scene: str, tmp_path: Path, **kw: Any) -> dict[str, Any]:
    """Run ``scene`` with soft devices set up by ``kw``: speaker_rate, speaker_fifo, with_mic and mic
    ("fifo", "zero" or the name of a file in ``tmp_path``); returns the scene's report."""
    env = {**os.environ, "CHILD_ARGS": json.dumps({k: str(v) for k, v in kw.items()}),
           "CHILD_DIR": str(tmp_path)}
    res = subprocess.run([sys.executable, "-m", "tests.audio.child", scene], env=env, capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def main(scene: str) -> None:
    from speakerd_workshop.softdev import SoftDevices

    args: dict[str, str] = json.loads(os.environ["CHILD_ARGS"])
    d = Path(os.environ["CHILD_DIR"])
    mic = args.get("mic", "fifo")
    dev = SoftDevices(d / "alsa", speaker_rate=int(args.get("speaker_rate", 24000)),
                      mic_infile=None if mic == "fifo" else Path("/dev/zero") if mic == "zero" else d / mic,
                      speaker_fifo=args.get("speaker_fifo") == "True", with_mic=args.get("with_mic") != "False",
                      playback_only=args.get("playback_only") == "True")
    os.environ.update(dev.env())
    # Only now: importing the scenes imports PyAudio, which must see the devices set up above.
    from tests.audio import scenes

    report = asyncio.run(scenes.SCENES[scene](dev, d))
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
