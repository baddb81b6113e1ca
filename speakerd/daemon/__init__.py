"""The daemon: one asyncio loop that owns all state and wires the parts together.

Why a package: the loop has several jobs, each in its own room. ``core`` builds the parts and runs
their lifecycle; ``executor`` carries out the state machine's effects; ``conversation`` owns the
Live session of the current conversation; ``metrics`` holds the local speech detector, latency
figures and the watchdog's health; ``commands`` answers ``speakerctl``; ``tools`` holds the
built-in tools the model may call; ``tasks`` supervises the loop's background tasks.
"""

from speakerd.daemon.core import Daemon, StartupError, main

__all__ = ["Daemon", "StartupError", "main"]
