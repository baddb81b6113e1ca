"""The wake-word plumbing on tiny deterministic ONNX models, loaded and streamed by real openwakeword.

Each tiny model ignores what it hears and scores a fixed value, so thresholds, patience, the
refractory period, pause/resume, reset and the bounded queue can be checked exactly. openwakeword
forces the first 5 scores after a (re)start to 0, which the expected frame indices include.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from speakerd import config
from speakerd.events import FRAME_BYTES, AudioFrame, WakeDetected
from speakerd.wakeword import WakeWordDetector, WakeWordError, load_model

WARMUP = 5  # openwakeword's forced zeros


def tiny_model(path: Path, score: float) -> Path:
    """An openWakeWord-shaped model, [1, 16, 96] features in, [1, 1] score out: always ``score``."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 96])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["z", "c"], ["y"]),
    ]
    init = [helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]),
            helper.make_tensor("c", TensorProto.FLOAT, [1, 1], [score])]
    graph = helper.make_graph(nodes, "tiny", [x], [y], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def frames(n: int, start: int = 0, t0: float = 0.0) -> list[AudioFrame]:
    return [AudioFrame(b"\0" * FRAME_BYTES, start + i, t0 + (start + i) * 0.08) for i in range(n)]


async def run(settings: config.WakewordSettings, feed: list[AudioFrame]) -> tuple[list[WakeDetected], WakeWordDetector]:
    found: list[WakeDetected] = []
    det = WakeWordDetector(settings, asyncio.get_running_loop(), found.append)
    for f in feed:
        det.feed(f)
        if det.pending > 10:
            await det.settled()
    await det.settled()
    await asyncio.sleep(0)  # let the posted events run
    await asyncio.to_thread(det.close)
    return found, det


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("tiny")
    return {name: str(tiny_model(d / f"{name}.onnx", score))
            for name, score in (("high", 0.9), ("mid", 0.6), ("low", 0.3))}


async def test_a_score_over_the_threshold_wakes_once_per_refractory_period(models: dict[str, str]) -> None:
    s = config.WakewordSettings(models=[models["mid"]], threshold=0.5, refractory_seconds=1.0)
    found, det = await run(s, frames(40))
    # 0.08 s frames: wakes at frame 5, then again once 1.0 s has passed (frame 5 + 13 = 18, 31).
    assert [(f.model, f.frame_index) for f in found] == [("mid", 5), ("mid", 18), ("mid", 31)]
    assert found[0].score == pytest.approx(0.6)
    assert det.frames == 40 and det.dropped == 0


async def test_thresholds_per_model_and_patience(models: dict[str, str]) -> None:
    s = config.WakewordSettings(models=[models["mid"], models["low"]], threshold=0.5,
                                thresholds={"mid": 0.7, "low": 0.2}, patience=3, refractory_seconds=100)
    found, _ = await run(s, frames(20))
    assert [(f.model, f.frame_index) for f in found] == [("low", WARMUP + 2)]  # 3 frames over 0.2


async def test_below_threshold_never_wakes(models: dict[str, str]) -> None:
    found, _ = await run(config.WakewordSettings(models=[models["low"]], threshold=0.5), frames(30))
    assert found == []


async def test_paused_frames_are_dropped_and_resume_starts_afresh(models: dict[str, str]) -> None:
    loop = asyncio.get_running_loop()
    found: list[WakeDetected] = []
    det = WakeWordDetector(config.WakewordSettings(models=[models["high"]], refractory_seconds=0),
                           loop, found.append)
    for f in frames(3):
        det.feed(f)
    await det.settled()
    det.pause()
    assert det.paused
    for f in frames(20, start=3):
        det.feed(f)
    await det.settled()
    assert det.frames == 3 and found == []
    det.resume()
    for f in frames(7, start=100):
        det.feed(f)
    await det.settled()
    await asyncio.sleep(0)
    # After resume the model restarts: 5 forced zeros, then a wake on every frame (no refractory).
    assert [f.frame_index for f in found] == [105, 106]
    det.reset()
    for f in frames(6, start=200):
        det.feed(f)
    await det.settled()
    await asyncio.sleep(0)
    assert [f.frame_index for f in found] == [105, 106, 205]
    await asyncio.to_thread(det.close)


async def test_a_full_queue_drops_the_oldest_frames(models: dict[str, str]) -> None:
    loop = asyncio.get_running_loop()
    det = WakeWordDetector(config.WakewordSettings(models=[models["low"]]), loop, lambda e: None)
    for f in frames(300):  # far more than the queue holds, faster than inference
        det.feed(f)
    await det.settled()
    await asyncio.to_thread(det.close)
    assert det.dropped > 0 and det.frames + det.dropped == 300


def test_model_files_that_are_not_wake_word_models(tmp_path: Path) -> None:
    # A valid ONNX file with the wrong input: one clear line, not an onnxruntime traceback.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 96])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 96])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "flat", [x], [y])
    path = tmp_path / "flat.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    with pytest.raises(WakeWordError) as e:
        load_model(config.WakewordSettings(models=[str(path)]))
    assert str(e.value).startswith(f"wakeword.models: {path} is not an openWakeWord model")
    with pytest.raises(WakeWordError, match=r"^wakeword.models: .*missing.onnx: no such file$"):
        load_model(config.WakewordSettings(models=[str(tmp_path / "missing.onnx")]))
    with pytest.raises(WakeWordError, match="TFLite models are not supported"):
        load_model(config.WakewordSettings(models=[str(tmp_path / "x.tflite")]))


async def test_real_and_tiny_models_together_report_their_own_names(models: dict[str, str]) -> None:
    s = config.WakewordSettings(models=["hey_jarvis", models["high"]], refractory_seconds=100)
    found, _ = await run(s, frames(10))
    assert [(f.model, f.frame_index) for f in found] == [("high", 5)]  # silence: hey_jarvis stays quiet
    assert np.isfinite(found[0].score)


class Flaky:
    """A real openwakeword Model that fails on demand: the boundary a broken ONNX runtime would be."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.failing = False

    def predict(self, x: np.ndarray) -> dict[str, float]:
        if self.failing:
            raise RuntimeError("onnxruntime: bad allocation\nsecond line")
        scores: dict[str, float] = self.model.predict(x)
        return scores

    def reset(self) -> None:
        self.model.reset()


async def test_a_failing_flush_or_frame_does_not_end_listening(models: dict[str, str],
                                                                caplog: pytest.LogCaptureFixture) -> None:
    s = config.WakewordSettings(models=[models["high"]], refractory_seconds=0)
    flaky = Flaky(load_model(s))
    found: list[WakeDetected] = []
    det = WakeWordDetector(s, asyncio.get_running_loop(), found.append, model=flaky)
    flaky.failing = True
    det.reset()  # the post-conversation flush now fails, then every frame does
    for f in frames(20):
        det.feed(f)
    await det.settled()
    assert det.errors == 21 and det.frames == 0 and found == []
    errors = [r.getMessage() for r in caplog.records if r.name == "speakerd.wakeword"]
    assert errors == ["wake-word flush failed: onnxruntime: bad allocation"]  # once, one line
    flaky.failing = False
    det.reset()
    for f in frames(6, start=100):
        det.feed(f)
    await det.settled()
    await asyncio.sleep(0)
    assert [f.frame_index for f in found] == [105]  # still listening, and afresh
    await asyncio.to_thread(det.close)


def test_speakerd_models_score_exactly_as_stock_openwakeword() -> None:
    """load_model changes onnxruntime's options and the length of openwakeword's raw-audio deque;
    neither may change a single score. Stock openwakeword on the same audio is the reference (its
    warm-up uses numpy's global random state, seeded alike for both)."""
    from speakerd_workshop.emulator.tts import synthesize

    from speakerd.wakeword import _openwakeword, _resources, model_path

    _openwakeword()
    from openwakeword.model import Model

    said = np.frombuffer(synthesize("hey jarvis, what time is it", rate=16000), dtype=np.int16)
    rng = np.random.default_rng(5)
    audio = np.concatenate([(rng.standard_normal(16000 * 3) * 300).astype(np.int16), said,
                            (rng.standard_normal(16000 * 12) * 300).astype(np.int16)])  # past 10 s
    res = _resources()
    np.random.seed(7)
    stock = Model(wakeword_models=[str(model_path("hey_jarvis"))], inference_framework="onnx",
                  melspec_model_path=str(res / "melspectrogram.onnx"),
                  embedding_model_path=str(res / "embedding_model.onnx"))
    np.random.seed(7)
    ours = load_model(config.WakewordSettings(models=["hey_jarvis"]))
    assert ours.preprocessor.raw_data_buffer.maxlen < stock.preprocessor.raw_data_buffer.maxlen
    a = [stock.predict(audio[i : i + 1280])["hey_jarvis_v0.1"] for i in range(0, len(audio) - 1279, 1280)]
    b = [ours.predict(audio[i : i + 1280])["hey_jarvis_v0.1"] for i in range(0, len(audio) - 1279, 1280)]
    assert max(a) > 0.5  # the phrase is heard: the comparison covers a detection
    assert a == b
