"""``python -m speakerd_workshop.echo_wiring run --config FILE``: the daemon with the echo pipeline.

Why this exists: the daemon is being rewritten, and wiring ``speakerd.audio.echo`` into it is the
lead's change (see docs/audio.md, "Wiring"). Until then the rig runs the unchanged daemon with the
pipeline put exactly where the daemon puts its echo canceller (into Player and Capture), built
from ``[audio.echo]``-equivalent settings passed in SPEAKERD_ECHO as JSON. Nothing else differs.
Remove this module once the daemon reads ``[audio.echo]`` itself.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from speakerd.audio.aec import EchoCancellerUnavailable
from speakerd.audio.echo import EchoSettings, build_echo


def main() -> int:
    settings = EchoSettings.model_validate_json(os.environ.get("SPEAKERD_ECHO") or "{}")
    import speakerd.daemon as daemon

    def factory(*_: Any, **__: Any) -> Any:
        pipeline = build_echo(settings)
        if pipeline is None:
            raise EchoCancellerUnavailable("echo handling off")
        return pipeline

    setattr(daemon, "EchoCanceller", factory)  # noqa: B010 - where the daemon builds its canceller
    from speakerd.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
