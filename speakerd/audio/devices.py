"""Finding audio devices by name or index, and ``speakerd devices``.

Why our own lookup: owners write a name fragment they saw in ``speakerd devices`` ("seeed",
"USB"), and a wrong one must say what exists instead of failing deep inside PortAudio.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_ALSA_HANDLER: Any = None


class AudioDeviceError(Exception):
    """An audio device that cannot be found or opened; the message is one line."""


def quiet_alsa() -> None:
    """ALSA and JACK print probe noise straight to stderr; route it nowhere (once per process).

    Through their own error-handler hooks, not by redirecting file descriptor 2: that would
    swallow the daemon's log lines written by other threads meanwhile.
    """
    global _ALSA_HANDLER
    if _ALSA_HANDLER is not None:
        return
    handlers: list[Any] = []
    name = ctypes.util.find_library("asound")
    if name:
        try:
            lib = ctypes.CDLL(name)
            proto = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                     ctypes.c_char_p)
            handlers.append(proto(lambda *_: None))
            lib.snd_lib_error_set_handler(handlers[-1])
        except (OSError, AttributeError):
            pass
    jack = ctypes.util.find_library("jack")
    if jack:
        try:
            lib = ctypes.CDLL(jack)
            proto1 = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
            handlers.append(proto1(lambda *_: None))
            lib.jack_set_error_function(handlers[-1])
            lib.jack_set_info_function(handlers[-1])
        except (OSError, AttributeError):
            pass
    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    _ALSA_HANDLER = handlers


def alsa_config_problem() -> str | None:
    """Why ALSA cannot read its configuration, if it cannot (PortAudio then fails obscurely)."""
    name = ctypes.util.find_library("asound")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.snd_strerror.restype = ctypes.c_char_p
        err = int(lib.snd_config_update())
    except (OSError, AttributeError):
        return None
    if err >= 0:
        return None
    reason = (lib.snd_strerror(err) or b"error").decode(errors="replace")
    where = os.environ.get("ALSA_CONFIG_PATH") or "~/.asoundrc or /etc/asound.conf"
    return f"the ALSA configuration cannot be read ({reason}); check {where}"


_PA_LOCK = threading.Lock()
_PA: Any = None
_PA_USERS = 0


def pyaudio_instance() -> Any:
    """The process's one PyAudio: PortAudio's initialise/terminate are not thread-safe.

    Pair every call with ``pyaudio_release``. When the last user releases it, PortAudio is shut
    down, so the next open enumerates devices afresh (a USB microphone plugged back in).
    """
    global _PA, _PA_USERS
    import pyaudio

    with _PA_LOCK:
        if _PA is None:
            quiet_alsa()
            try:
                _PA = pyaudio.PyAudio()
            except OSError as e:
                raise AudioDeviceError(alsa_config_problem() or f"PortAudio cannot start: {e}") from None
        _PA_USERS += 1
        return _PA


def pyaudio_release() -> None:
    global _PA, _PA_USERS
    with _PA_LOCK:
        _PA_USERS = max(0, _PA_USERS - 1)
        if _PA_USERS == 0 and _PA is not None:
            with contextlib.suppress(Exception):
                _PA.terminate()
            _PA = None


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_rate: int


def list_devices(pa: Any) -> list[Device]:
    out = []
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        out.append(Device(i, str(info["name"]), int(info["maxInputChannels"]),
                          int(info["maxOutputChannels"]), int(info["defaultSampleRate"])))
    return out


def find_device(pa: Any, ref: str | int | None, kind: str) -> Device | None:
    """The device for ``ref`` (index or name substring); None means the default device."""
    devices = [d for d in list_devices(pa)
               if (d.max_input_channels if kind == "input" else d.max_output_channels) > 0]
    if ref is None:
        return None
    if isinstance(ref, int):
        for d in devices:
            if d.index == ref:
                return d
        raise AudioDeviceError(f"audio.{kind}_device: no {kind} device with index {ref}; "
                               f"see `speakerd devices`")
    matches = [d for d in devices if ref.lower() in d.name.lower()]
    if not matches:
        names = ", ".join(repr(d.name) for d in devices[:8]) or "none"
        raise AudioDeviceError(f"audio.{kind}_device: no {kind} device matches {ref!r} (found: {names})")
    exact = [d for d in matches if d.name.lower() == ref.lower()]
    return (exact or matches)[0]


def default_device(pa: Any, kind: str) -> Device | None:
    """The device used when none is configured: PortAudio's default if it can do ``kind``, else the
    first device that can; None when no device can (a Pi with only its headphone jack).

    Why not just PortAudio's default: with no capture device at all, asking for it raises
    OSError, and on some systems it names a device that cannot do ``kind``.
    """
    try:
        info = pa.get_default_input_device_info() if kind == "input" else pa.get_default_output_device_info()
        index = int(info["index"])
    except (OSError, KeyError, TypeError, ValueError):
        index = -1
    usable = [d for d in list_devices(pa)
              if (d.max_input_channels if kind == "input" else d.max_output_channels) > 0]
    return next((d for d in usable if d.index == index), usable[0] if usable else None)


def no_device_message(kind: str) -> str:
    what, verb = ("microphone", "capture") if kind == "input" else ("speaker", "play")
    return (f"no {what} found: no audio device can {verb} (is it plugged in, is its driver loaded? "
            f"see `speakerd devices`)")


def supports(pa: Any, device: Device | None, kind: str, rate: int, channels: int) -> bool:
    import pyaudio

    kwargs: dict[str, Any] = {"rate": rate, "input_format": pyaudio.paInt16} if kind == "input" else \
        {"rate": rate, "output_format": pyaudio.paInt16}
    key = "input" if kind == "input" else "output"
    kwargs[f"{key}_channels"] = channels
    try:
        if device is None:
            device = default_device(pa, kind)
            if device is None:
                return False
        kwargs[f"{key}_device"] = device.index
        return bool(pa.is_format_supported(**kwargs))
    except (ValueError, OSError):
        return False


COMMON_RATES = (16000, 22050, 24000, 32000, 44100, 48000)


def probe_rates(pa: Any, device: Device) -> list[int]:
    """The common rates the device accepts as 16-bit, on either side it has."""
    out = []
    for rate in COMMON_RATES:
        ok_in = device.max_input_channels > 0 and supports(pa, device, "input", rate, 1)
        ok_out = device.max_output_channels > 0 and supports(pa, device, "output", rate, 1)
        if ok_in or ok_out:
            out.append(rate)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speakerd devices", description="List audio inputs and outputs.")
    p.add_argument("--no-probe", action="store_true", help="do not open devices to find the rates they accept")
    args = p.parse_args(argv)
    try:
        pa = pyaudio_instance()
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"speakerd devices: {msg}", file=sys.stderr)
        return 1
    try:
        devices = list_devices(pa)
        if not devices:
            print("speakerd devices: no audio devices found (is the sound card or HAT driver loaded? "
                  "try `aplay -l`)", file=sys.stderr)
            return 1
        chosen = {kind: default_device(pa, kind) for kind in ("input", "output")}
        print(f"{'index':>5}  {'in':>3} {'out':>3}  {'rate':>6}  {'rates':<34}  {'use':<7}  name")
        for d in devices:
            rates = "-" if args.no_probe else ",".join(str(r) for r in probe_rates(pa, d)) or "none"
            use = "/".join(("in", "out")[k == "output"] for k, c in chosen.items() if c == d) or "-"
            print(f"{d.index:>5}  {d.max_input_channels:>3} {d.max_output_channels:>3}  "
                  f"{d.default_rate:>6}  {rates:<34}  {use:<7}  {d.name}")
        for kind, c in chosen.items():
            if c is None:
                print(f"\n{no_device_message(kind)}")
        print("\nuse: what speakerd takes while [audio] input_device (in) / output_device (out) is unset.")
        print("Use a name fragment or an index in [audio] input_device / output_device.")
        return 0
    finally:
        pyaudio_release()
