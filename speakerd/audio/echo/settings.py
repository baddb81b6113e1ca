"""``[audio.echo]``: defined with the other settings (``speakerd.config.echo``), named here too."""

from speakerd.config.echo import Canceller, EchoSettings, Gate

__all__ = ["Canceller", "EchoSettings", "Gate"]
