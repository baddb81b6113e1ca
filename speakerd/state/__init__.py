"""The conversation state machine: events in, effects out, no I/O.

``machine`` holds the conversation's rules; ``alarm`` the rules while an alarm rings over
whatever else is going on. Both are plain code a test drives with values and no clock.
"""

from speakerd.state.machine import Event, Machine, Timings

__all__ = ["Event", "Machine", "Timings"]
