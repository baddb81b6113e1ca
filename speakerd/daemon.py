"""The daemon: one asyncio loop that owns all state and wires the parts together.

Why one loop: audio, inference and GPIO run on their own threads, but every decision is taken
here, in order, from typed events; nothing else mutates state, so there are no locks to get wrong.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass, field

from speakerd import config, systemd

log = logging.getLogger("speakerd")


@dataclass
class Health:
    """What the watchdog needs to know; parts update it from the loop."""

    started: float = field(default_factory=time.monotonic)
    last_frame: float | None = None  # monotonic time of the newest microphone frame
    mic_expected: bool = False  # False while muted or before capture starts
    frame_timeout: float = 5.0

    def problem(self) -> str | None:
        if not self.mic_expected:
            return None
        now = time.monotonic()
        last = self.last_frame if self.last_frame is not None else self.started
        if now - last > self.frame_timeout:
            return f"no microphone frames for {now - last:.1f} s"
        return None


class Daemon:
    def __init__(self, cfg: config.Config, *, redactor: systemd.RedactSecrets | None = None) -> None:
        self.cfg = cfg
        self.redactor = redactor or systemd.RedactSecrets()
        self.notifier = systemd.Notifier()
        self.health = Health()
        self.state = "booting"
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # Lifecycle ------------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        interval = systemd.watchdog_interval()
        if interval is not None:
            self._tasks.append(
                asyncio.create_task(
                    systemd.run_watchdog(self.notifier, interval, self.health.problem),
                    name="watchdog",
                )
            )
        self.set_state("idle")
        self.notifier.ready(self.status_line())
        log.info("speakerd ready", extra=systemd.fields(state=self.state))
        await self._stop.wait()
        self.notifier.stopping()
        log.info("stopping", extra=systemd.fields(state=self.state))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return 0

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self.notifier.reloading()
        try:
            new = config.load(self.cfg.path)
        except config.ConfigError as e:
            for line in e.lines:
                log.error("reload refused, keeping the running configuration: %s", line)
            self.notifier.ready(self.status_line())
            return
        if new.api_key is not None:
            self.redactor.add(new.api_key.get_secret_value())
        for warning in new.warnings:
            log.warning("%s", warning)
        self.cfg = new
        logging.getLogger().setLevel(new.settings.logging.level.upper())
        log.info("configuration reloaded from %s", new.path)
        self.notifier.ready(self.status_line())

    # State ----------------------------------------------------------------------------------------

    def set_state(self, state: str) -> None:
        self.state = state
        self.notifier.status(self.status_line())

    def status_line(self) -> str:
        return self.state


def main(cfg: config.Config, *, redactor: systemd.RedactSecrets | None = None) -> int:
    try:
        return asyncio.run(Daemon(cfg, redactor=redactor).run())
    except KeyboardInterrupt:
        return 130
