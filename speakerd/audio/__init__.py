"""Audio in and out: capture, pre-roll, playback, resampling, earcons, devices, soft devices."""

from speakerd.audio.capture import Capture, CaptureStats
from speakerd.audio.devices import AudioDeviceError, find_device, list_devices
from speakerd.audio.playback import Player
from speakerd.audio.playqueue import PlayerStats
from speakerd.audio.preroll import PrerollBuffer
from speakerd.audio.resample import StreamResampler

__all__ = [
    "AudioDeviceError",
    "Capture",
    "CaptureStats",
    "Player",
    "PlayerStats",
    "PrerollBuffer",
    "StreamResampler",
    "find_device",
    "list_devices",
]
