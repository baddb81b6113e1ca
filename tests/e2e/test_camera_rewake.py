"""A wake right after a conversation ends, with ``camera.send = "always"``: the new one opens.

Why: the daemon spawns ``camera.stop()`` when a conversation ends and calls ``camera.start()`` on
the next wake; a start while that stop was still running raised inside ``_open_session``, and the
speaker sat in ``wake`` until the idle timeout. Large images keep the capture thread busy, so the
stop is likely still running when the wake arrives.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.conftest import RigFactory


@pytest.mark.slow
def test_a_wake_right_after_the_end_opens_a_new_session_with_the_camera_on(
    rig_factory: RigFactory, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.effect_noise((2400, 1800), 80).convert("RGB").save(photos / "noise.png")  # slow to decode
    config = (f'[camera]\nenabled = true\nsource = "files"\ndevice = "{photos}"\nfps = 5.0\nsend = "always"\n'
              "[conversation]\nfollow_up_seconds = 2.0\n")
    with rig_factory(config=config) as rig:
        assert rig.emulator is not None
        rig.ctl("say", "what time is it")
        listening = rig.wait_state("listening", timeout=30)
        rig.wait_log(r"^speaker: .*test\.", timeout=30)
        # Wake as soon as the follow-up window is over: the camera's stop has only just begun.
        deadline = time.monotonic() + 30
        while rig.ctl("wake")["message"].startswith("already"):
            assert time.monotonic() < deadline, "the conversation did not end"
            time.sleep(0.002)
        idle = rig.wait_state("idle", timeout=10, start=listening)
        woke = rig.wait_state("wake", timeout=10, start=idle)
        # The new session opens (before the fix it was never opened). Whether the conversation then
        # lasts is issue 13's other seam: the old session's "closed" may still end it.
        rig.wait_log(r"^Live session ready", timeout=20, start=woke)
        assert len(rig.emulator.connections) == 2
