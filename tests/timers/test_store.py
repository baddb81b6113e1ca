"""The store on disk: corrupt, foreign and partly bad files are kept aside, never silently lost."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from speakerd.timers import TimerStore
from speakerd.timers.model import Item
from tests.timers.conftest import BERLIN, Rig


@pytest.mark.parametrize("content", [
    b"{\"format\": \"speakerd-timers\", \"version\": 1, \"items\": [",  # cut off by a power cut
    b"\xff\xfe garbage",
    b"[1, 2, 3]",
    b"{\"alarms\": []}",  # another program's file
    b"{\"format\": \"speakerd-timers\", \"version\": 99, \"items\": []}",  # a newer speakerd
])
def test_unreadable_file_is_kept_aside_and_the_daemon_starts_empty(
        tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "timers.json").write_bytes(content)
    loaded = TimerStore(tmp_path).load(BERLIN)
    assert loaded.items == [] and loaded.next_id == 1
    assert (tmp_path / "timers.json.bad").read_bytes() == content
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "timers.json.bad" in warnings[0].getMessage()


def test_bad_entries_are_dropped_and_the_rest_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = Item("4", "timer", 2e9, 1e9, "tea", seconds=60, mono_due=None, boot=None)
    data = {"format": "speakerd-timers", "version": 1, "next_id": 2,
            "items": [good.to_json(), {"id": "5", "kind": "alarm", "time": "99:99"}]}
    (tmp_path / "timers.json").write_text(json.dumps(data))
    loaded = TimerStore(tmp_path).load(BERLIN)
    assert [i.label for i in loaded.items] == ["tea"]
    assert loaded.next_id == 5  # never below an id in use
    assert (tmp_path / "timers.json.bad").exists()
    assert "1 of 2 entries are malformed" in caplog.text


async def test_starting_on_a_corrupt_file_then_saving_keeps_the_copy(rig: Rig) -> None:
    (rig.state / "timers.json").write_text("not json")
    s = rig.make()
    s.add_timer(60)
    s.close()
    assert (rig.state / "timers.json.bad").read_text() == "not json"
    assert len(json.loads((rig.state / "timers.json").read_text())["items"]) == 1


def test_unwritable_state_is_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "speakerd.timers")
    blocked = tmp_path / "state"
    blocked.write_text("a file where the directory should be")  # fails for root too
    store = TimerStore(blocked)
    assert store.save([], 1) is False
    assert store.save([], 1) is False
    assert caplog.text.count("cannot store timers") == 1
    blocked.unlink()
    assert store.save([], 1) is True and "writable again" in caplog.text


def test_a_file_that_cannot_be_read_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "timers.json").mkdir()  # EISDIR on read, for root as well
    assert TimerStore(tmp_path).load(BERLIN).items == []
    assert (tmp_path / "timers.json.bad").is_dir() and not (tmp_path / "timers.json").exists()
    assert "moved to" in caplog.text and TimerStore(tmp_path).save([], 1)


def test_save_is_atomic_and_private(tmp_path: Path) -> None:
    store = TimerStore(tmp_path / "state")
    assert store.save([], 7)
    path = tmp_path / "state" / "timers.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["timers.json"]  # no temp file left
    assert store.load(BERLIN).next_id == 7
