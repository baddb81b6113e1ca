"""The optional camera: frames for the Live API as JPEG, captured and encoded off the event loop.

The Live API takes about one JPEG per second next to the audio. By default nothing is captured
until the model calls the ``look`` tool (privacy, tokens); ``send = "always"`` streams during the
whole conversation. Whoever drives the camera is told when it starts and stops capturing
(``on_active``), which is what the privacy LED and earcon follow.

``sources`` (files, V4L2, picamera2), ``encoding`` (capture and JPEG on threads), ``runner``
(the :class:`Camera`: streaming, snapshots, looks) and ``look`` (the tool) are the parts.
"""

from speakerd.camera.encoding import CameraStats, encode_jpeg
from speakerd.camera.look import (
    LOOK_MAX_PHOTOS,
    LOOK_SPEC,
    camera_connect_overrides,
    look_handler,
    look_tool_declaration,
)
from speakerd.camera.runner import Camera, OnActive, OnJpeg, open_camera
from speakerd.camera.sources import CameraError, Source, make_source, probe

__all__ = [
    "LOOK_MAX_PHOTOS",
    "LOOK_SPEC",
    "Camera",
    "CameraError",
    "CameraStats",
    "OnActive",
    "OnJpeg",
    "Source",
    "camera_connect_overrides",
    "encode_jpeg",
    "look_handler",
    "look_tool_declaration",
    "make_source",
    "open_camera",
    "probe",
]
