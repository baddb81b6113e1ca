"""The wake word: openWakeWord on ONNX, in its own thread, so nothing leaves before it is heard.

Why a thread with a bounded queue: inference costs a few ms per 80 ms frame, which must never
stall the event loop; if the CPU falls behind, old frames are dropped (a late wake word is
useless) rather than queued without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from speakerd.config import WakewordSettings
from speakerd.events import AudioFrame, WakeDetected
from speakerd.memory import release_memory
from speakerd.supervise import Supervised

log = logging.getLogger("speakerd.wakeword")
# onnxruntime (1.2x) otherwise keeps a device id and a growing SQLite telemetry database under
# ~/.cache/Microsoft, written at every session creation (on a Pi: the SD card), for ~2 MiB more
# resident memory. Read when onnxruntime is imported, which happens only below, lazily.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
BUILTIN = ("alexa", "hey_jarvis", "hey_mycroft", "hey_rhasspy")
QUEUE_FRAMES = 25  # 2 s
FLUSH_SAMPLES = 16000 * 2  # longer than the models' 1.5 s feature window
ERROR_LOG_SECONDS = 30.0
TRIM_EVERY_FRAMES = 750  # 60 s: return the heap the frames freed to the system
TRIM_FIRST_FRAME = 25  # and once 2 s after listening starts, when the buffers have settled
RAW_BUFFER_SAMPLES = 16000 * 2  # openwakeword keeps 10 s; it reads the last 1280 + 480


class WakeWordError(Exception):
    """A model that does not exist or cannot be loaded; the message is one line."""


def _train_custom_verifier(*_args: Any, **_kwargs: Any) -> None:
    raise RuntimeError("speakerd does not train openWakeWord custom verifiers")


def _openwakeword() -> types.ModuleType:
    """The openwakeword package, without its custom-verifier trainer.

    Why: openwakeword 0.5.1's ``__init__`` imports ``custom_verifier_model`` only to re-export
    ``train_custom_verifier``, and that pulls scikit-learn and SciPy (~100 MiB, over a second on a
    Pi) into a process that only runs the ONNX models. Pre-registering that one submodule as a stub
    lets the real ``__init__``, ``model`` and ``utils`` run unchanged.
    """
    if "openwakeword" not in sys.modules:
        stub = types.ModuleType("openwakeword.custom_verifier_model", "stub: speakerd trains nothing")
        stub.train_custom_verifier = _train_custom_verifier  # type: ignore[attr-defined]
        sys.modules.setdefault("openwakeword.custom_verifier_model", stub)
    import openwakeword

    module: types.ModuleType = openwakeword
    return module


def _resources() -> Path:
    return Path(str(_openwakeword().__file__)).parent / "resources" / "models"


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
    _openwakeword()
    from openwakeword.model import Model

    res = _resources()
    try:
        with _small_sessions():
            model = Model(
                wakeword_models=[str(p) for p in paths],
                inference_framework="onnx",
                vad_threshold=settings.vad_threshold,
                melspec_model_path=str(melspec or res / "melspectrogram.onnx"),
                embedding_model_path=str(embedding or res / "embedding_model.onnx"),
            )
    except Exception as e:
        raise WakeWordError(f"wakeword.models: cannot load {', '.join(map(str, paths))}: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    _trim_raw_buffer(model)
    release_memory()  # the warm-up's 4 s batch left tens of MiB of free heap behind
    return model


def _trim_raw_buffer(model: Any) -> None:
    """Keep 2 s of raw audio in openwakeword's feature extractor instead of 10 s.

    Why: it holds the samples as Python ints in a deque (160,000 of them, ~6 MiB) and copies the
    whole deque into a list on every 80 ms frame, yet reads only the newest frame plus 480 samples
    of context. The same samples are read, so the scores are identical (tested against a stock
    Model); only memory and CPU go down. Frames are fed 1280 samples at a time, far under 2 s.
    """
    pre = getattr(model, "preprocessor", None)
    buffer = getattr(pre, "raw_data_buffer", None)
    if isinstance(buffer, deque) and (buffer.maxlen or 0) > RAW_BUFFER_SAMPLES:
        pre.raw_data_buffer = deque(buffer, maxlen=RAW_BUFFER_SAMPLES)  # type: ignore[union-attr]


def session_options() -> Any:
    """onnxruntime options for a small, steady footprint on a Pi.

    One thread each (inference is a few ms per 80 ms frame; a pool only adds idle threads), and
    no CPU memory arena: openwakeword warms its feature extractor on a 4 s batch, and an arena
    would keep that peak (~30 MiB) for the life of the process. Without it, per-run buffers come
    from malloc, which cost no measurable CPU at this size (bench/footprint.py, bench/idle_cpu.py).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.enable_cpu_mem_arena = False
    opts.log_severity_level = 3
    return opts


@contextlib.contextmanager
def _small_sessions() -> Iterator[None]:
    """Every onnxruntime session openwakeword creates meanwhile gets ``session_options()``.

    Why patch: openwakeword 0.5.1 builds its sessions itself with fixed options and offers no
    hook. Only the options change (the same models, the same providers), and only during the
    construction of one Model, which speakerd does once at start and on reload.
    """
    import onnxruntime as ort

    real = ort.InferenceSession

    def small(path: Any, sess_options: Any = None, providers: Any = None, **kw: Any) -> Any:
        return real(path, sess_options=session_options(), providers=providers or ["CPUExecutionProvider"], **kw)

    ort.InferenceSession = small
    try:
        yield
    finally:
        ort.InferenceSession = real


def _check_onnx(path: Path) -> None:
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(path), sess_options=session_options(), providers=["CPUExecutionProvider"])
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
        self.errors = 0  # inference failures (frames and flushes), all of them
        self._next_error_log = 0.0  # monotonic: the log says how many failed in between
        self._unlogged = 0
        self._queue: queue.Queue[AudioFrame | None] = queue.Queue(maxsize=QUEUE_FRAMES)
        self._paused = False
        self._reset = threading.Event()
        self._streak: dict[str, int] = dict.fromkeys(self.keys, 0)
        self._quiet_until = -1.0  # monotonic: refractory period after a detection
        self._worker = Supervised("speakerd-wakeword", self._run)
        self._worker.start()

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
    def alive(self) -> bool:
        return self._worker.alive

    @property
    def crashes(self) -> int:
        return self._worker.crashes

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
        self._worker.stop()
        self._paused = True
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=1)
        self._worker.join(timeout=3)

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
            try:
                self._flush_model()
            except Exception as e:  # like a bad frame: the thread must go on listening
                self._inference_failed("flush", e)
        if self._paused:
            return
        try:
            scores = self.model.predict(np.frombuffer(frame.pcm, dtype=np.int16))
        except Exception as e:  # one bad frame must not end listening
            self._inference_failed("inference", e)
            return
        self.frames += 1
        if self.frames % TRIM_EVERY_FRAMES == TRIM_FIRST_FRAME:
            release_memory()  # onnxruntime's per-frame buffers fragment the heap; ~0.1 ms a minute
        self._check(scores, frame)

    def _inference_failed(self, what: str, e: Exception) -> None:
        """One log line per ERROR_LOG_SECONDS at most: a broken model fails 12.5 times a second."""
        self.errors += 1
        now = time.monotonic()
        if now < self._next_error_log:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more failures since the last report)" if self._unlogged else ""
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        log.error("wake-word %s failed: %s%s", what, msg, more)
        self._unlogged = 0
        self._next_error_log = now + ERROR_LOG_SECONDS

    def _flush_model(self) -> None:
        """Forget the audio heard before a pause. Model.reset() clears only the scores; the feature
        buffers would still hold the last wake word and fire it again, so push silence through."""
        self._streak = dict.fromkeys(self.keys, 0)
        silence = np.zeros(1280, dtype=np.int16)
        for _ in range(FLUSH_SAMPLES // 1280):
            self.model.predict(silence)
        self.model.reset()
        release_memory()  # after a conversation: what it allocated and freed goes back

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
