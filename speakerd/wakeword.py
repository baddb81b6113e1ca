"""The wake word: openWakeWord on ONNX, in its own thread, so nothing leaves before it is heard.

Why a thread with a bounded queue: inference costs a few ms per 80 ms frame, which must never
stall the event loop; if the CPU falls behind, old frames are dropped (a late wake word is
useless) rather than queued without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from speakerd.config import WakewordSettings
from speakerd.events import AudioFrame, WakeDetected

log = logging.getLogger("speakerd.wakeword")
BUILTIN = ("alexa", "hey_jarvis", "hey_mycroft", "hey_rhasspy")
QUEUE_FRAMES = 25  # 2 s
FLUSH_SAMPLES = 16000 * 2  # longer than the models' 1.5 s feature window


class WakeWordError(Exception):
    """A model that does not exist or cannot be loaded; the message is one line."""


def _resources() -> Path:
    import openwakeword

    return Path(openwakeword.__file__).parent / "resources" / "models"


def model_path(name: str) -> Path:
    """A built-in model's ONNX file, or the owner's own file."""
    if name in BUILTIN:
        path = _resources() / f"{name}_v0.1.onnx"
        if not path.exists():
            raise WakeWordError(f"wakeword.models: the built-in model {name!r} is missing from the "
                                "openwakeword installation (it must be version 0.5.1)")
        return path
    path = Path(name).expanduser()
    if path.suffix == ".tflite":
        raise WakeWordError(f"wakeword.models: {name}: TFLite models are not supported; use the .onnx file")
    if path.suffix != ".onnx" and not path.exists():
        raise WakeWordError(f"wakeword.models: unknown model {name!r}; built-in models are "
                            f"{', '.join(BUILTIN)}, or give the path of a .onnx file")
    if not path.is_file():
        raise WakeWordError(f"wakeword.models: {path}: no such file")
    return path


def model_key(name: str) -> str:
    """The name openwakeword reports scores under: the model file's stem."""
    return f"{name}_v0.1" if name in BUILTIN else Path(name).stem


def display_name(name: str) -> str:
    return name if name in BUILTIN else Path(name).stem


def load_model(settings: WakewordSettings, melspec: Path | None = None, embedding: Path | None = None) -> Any:
    """An openwakeword Model on onnxruntime, or WakeWordError."""
    paths = [model_path(m) for m in settings.models]
    for p in paths:
        _check_onnx(p)
    from openwakeword.model import Model

    res = _resources()
    try:
        return Model(
            wakeword_models=[str(p) for p in paths],
            inference_framework="onnx",
            vad_threshold=settings.vad_threshold,
            melspec_model_path=str(melspec or res / "melspectrogram.onnx"),
            embedding_model_path=str(embedding or res / "embedding_model.onnx"),
        )
    except Exception as e:
        raise WakeWordError(f"wakeword.models: cannot load {', '.join(map(str, paths))}: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def _check_onnx(path: Path) -> None:
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception:
        raise WakeWordError(f"wakeword.models: {path} is not a valid ONNX model") from None
    shape = sess.get_inputs()[0].shape
    if len(shape) != 3:
        raise WakeWordError(f"wakeword.models: {path} is not an openWakeWord model "
                            f"(input shape {shape}, expected [batch, frames, 96])")


class WakeWordDetector:
    def __init__(self, settings: WakewordSettings, loop: asyncio.AbstractEventLoop,
                 on_wake: Callable[[WakeDetected], None], *, model: Any = None) -> None:
        self.settings = settings
        self.loop = loop
        self.on_wake = on_wake
        self.model = model if model is not None else load_model(settings)
        self.keys = [model_key(m) for m in settings.models]
        self.names = {model_key(m): display_name(m) for m in settings.models}
        self.thresholds = {model_key(m): settings.thresholds.get(display_name(m), settings.threshold)
                           for m in settings.models}
        self.dropped = 0
        self.frames = 0
        self._queue: queue.Queue[AudioFrame | None] = queue.Queue(maxsize=QUEUE_FRAMES)
        self._paused = False
        self._reset = threading.Event()
        self._streak: dict[str, int] = dict.fromkeys(self.keys, 0)
        self._quiet_until = -1.0  # monotonic: refractory period after a detection
        self._thread = threading.Thread(target=self._run, name="speakerd-wakeword", daemon=True)
        self._thread.start()

    # Loop side ------------------------------------------------------------------------------------

    def feed(self, frame: AudioFrame) -> None:
        if self._paused:
            return
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()  # the oldest goes: a late detection is worthless
                self._queue.task_done()
            self.dropped += 1
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(frame)

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._reset.set()  # old audio in the model's buffers must not trigger a wake

    def reset(self) -> None:
        """Forget what was heard so far (streaks and the model's buffers), e.g. after a conversation."""
        self._reset.set()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def pending(self) -> int:
        """Frames waiting for inference."""
        return self._queue.qsize()

    async def settled(self) -> None:
        """Wait until every frame fed so far has been scored (and any wake event posted)."""
        await asyncio.to_thread(self._queue.join)

    def close(self) -> None:
        self._paused = True
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=1)
        self._thread.join(timeout=3)

    # Thread ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            frame = self._queue.get()
            try:
                if frame is None:
                    return
                self._step(frame)
            finally:
                self._queue.task_done()

    def _step(self, frame: AudioFrame) -> None:
        if self._reset.is_set():
            self._reset.clear()
            self._flush_model()
        if self._paused:
            return
        try:
            scores = self.model.predict(np.frombuffer(frame.pcm, dtype=np.int16))
        except Exception as e:  # one bad frame must not end listening
            log.error("wake-word inference failed: %s", e)
            return
        self.frames += 1
        self._check(scores, frame)

    def _flush_model(self) -> None:
        """Forget the audio heard before a pause. Model.reset() clears only the scores; the feature
        buffers would still hold the last wake word and fire it again, so push silence through."""
        silence = np.zeros(FLUSH_SAMPLES, dtype=np.int16)
        for i in range(0, len(silence), 1280):
            self.model.predict(silence[i : i + 1280])
        self.model.reset()
        self._streak = dict.fromkeys(self.keys, 0)

    def _check(self, scores: dict[str, float], frame: AudioFrame) -> None:
        for key in self.keys:
            score = float(scores.get(key, 0.0))
            self._streak[key] = self._streak[key] + 1 if score >= self.thresholds[key] else 0
            if self._streak[key] >= self.settings.patience and frame.monotonic >= self._quiet_until:
                self._quiet_until = frame.monotonic + self.settings.refractory_seconds
                self._streak = dict.fromkeys(self.keys, 0)
                event = WakeDetected(self.names[key], score, frame.index)
                with contextlib.suppress(RuntimeError):
                    self.loop.call_soon_threadsafe(self.on_wake, event)
                return
