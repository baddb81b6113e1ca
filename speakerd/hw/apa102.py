"""A small APA102 (and SK9822) LED-strip driver over SPI, as on the ReSpeaker 2-mic and 4-mic HATs.

Why our own: gpiozero has no APA102 device, and the vendors' drivers are example scripts. The
protocol is tiny: a start frame of 32 zero bits, one 32-bit frame per LED (``0b111`` + 5-bit
global brightness, then blue, green, red), and an end frame of zero bytes that supplies the extra
clock edges the chain needs (n/2 bits; at least 32 so SK9822 clones latch too). The SPI device is
injected: anything with ``xfer2`` or ``writebytes`` like ``spidev.SpiDev``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from speakerd.hw.pins import GpioUnavailable

START_FRAME = bytes(4)
SPI_SPEED_HZ = 8_000_000
MAX_GLOBAL = 31  # the 5-bit global brightness field


class SpiLike(Protocol):
    """The part of ``spidev.SpiDev`` we use (one of the two write calls)."""

    def xfer2(self, data: list[int]) -> Any: ...


def end_frame(count: int) -> bytes:
    return bytes(max(4, (count + 15) // 16))


def encode(pixels: Sequence[tuple[int, int, int, int]]) -> bytes:
    """The whole SPI transfer for ``(red, green, blue, global)`` pixels; colours 0..255, global 0..31."""
    out = bytearray(START_FRAME)
    for r, g, b, level in pixels:
        for v in (r, g, b):
            if not 0 <= v <= 255:
                raise ValueError(f"colour value {v} out of 0..255")
        if not 0 <= level <= MAX_GLOBAL:
            raise ValueError(f"global brightness {level} out of 0..{MAX_GLOBAL}")
        out += bytes((0xE0 | level, b, g, r))
    out += end_frame(len(pixels))
    return bytes(out)


def to_pixel(
    color: tuple[float, float, float], brightness: float, intensity: float
) -> tuple[int, int, int, int]:
    """A pixel from a pattern: brightness picks the global level, intensity scales the colour.

    Splitting them keeps pulse fades smooth (256 colour steps) while brightness stays cheap.
    """
    level = round(MAX_GLOBAL * brightness) if intensity > 0 else 0
    r, g, b = (round(255 * c * intensity) for c in color)
    return r, g, b, level


class MemorySpi:
    """An SPI device that keeps what was written: for the mock pin factory (demos, tests)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def xfer2(self, data: list[int]) -> list[int]:
        self.writes.append(bytes(data))
        return [0] * len(data)

    def close(self) -> None:
        self.closed = True


def open_spi(bus: int, device: int, speed_hz: int = SPI_SPEED_HZ) -> Any:
    """Open ``/dev/spidev{bus}.{device}``, or say in one line why it cannot be."""
    try:
        import spidev  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise GpioUnavailable(
            'led_profile "apa102" needs the spidev module (apt install python3-spidev, or pip install spidev)'
        ) from None
    spi = spidev.SpiDev()
    try:
        spi.open(bus, device)
    except OSError as e:
        raise GpioUnavailable(
            f"cannot open SPI device /dev/spidev{bus}.{device} ({e.strerror}); enable SPI with "
            f"raspi-config (Interface Options > SPI) and check apa102_spi_bus/apa102_spi_device"
        ) from None
    spi.max_speed_hz = speed_hz
    spi.mode = 0
    return spi


class APA102:
    """A chain of ``count`` APA102 LEDs on an SPI device."""

    def __init__(self, spi: Any, count: int, *, own_spi: bool = False) -> None:
        if not (hasattr(spi, "xfer2") or hasattr(spi, "writebytes")):
            raise TypeError("spi needs an xfer2 or writebytes method, like spidev.SpiDev")
        self.spi = spi
        self.count = count
        self._own = own_spi

    def write(self, pixels: Sequence[tuple[int, int, int, int]]) -> None:
        if len(pixels) != self.count:
            raise ValueError(f"expected {self.count} pixels, got {len(pixels)}")
        data = list(encode(pixels))
        if hasattr(self.spi, "xfer2"):
            self.spi.xfer2(data)  # xfer2 may overwrite the list it is given; it is ours
        else:
            self.spi.writebytes(data)

    def off(self) -> None:
        self.write([(0, 0, 0, 0)] * self.count)

    def close(self) -> None:
        if self._own and hasattr(self.spi, "close"):
            self.spi.close()
