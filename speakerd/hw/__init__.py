"""LEDs and the button on gpiozero: what the daemon imports from the hardware side.

``select_pin_factory`` decides whether there is GPIO at all; ``make_leds`` and ``GestureButton``
open the configured devices on it. Everything here fails with GpioUnavailable (one line), never
with a gpiozero traceback.
"""

from speakerd.hw.button import GestureButton, GestureDetector, action_for
from speakerd.hw.leds import Leds, make_leds
from speakerd.hw.pins import GpioUnavailable, select_pin_factory

__all__ = [
    "GestureButton",
    "GestureDetector",
    "GpioUnavailable",
    "Leds",
    "action_for",
    "make_leds",
    "select_pin_factory",
]
