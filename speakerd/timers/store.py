"""The timer store: every active timer, alarm and reminder, kept across restarts and power cuts.

Why so careful: a lost alarm is a missed morning. Writes are atomic (``speakerd.atomic``). A file
that cannot be read as ours (corrupt, truncated, from another program or a newer speakerd) is
never silently lost: one warning, a ``.bad`` copy next to it, and the daemon starts empty.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from speakerd.atomic import write_atomic
from speakerd.timers.model import Item, ItemError

log = logging.getLogger("speakerd.timers")

FILENAME = "timers.json"
FORMAT = "speakerd-timers"
VERSION = 1


@dataclass
class Loaded:
    items: list[Item]
    next_id: int


class TimerStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILENAME
        self.writable = True

    def load(self, tz: dt.tzinfo) -> Loaded:
        """The stored items (when each rings recomputed for ``tz``); empty when there is no file."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return Loaded([], 1)
        except OSError as e:  # unreadable, yet maybe not lost: move it aside, do not write over it
            aside = self.path.with_name(self.path.name + ".bad")
            try:
                os.replace(self.path, aside)
                kept = f"moved to {aside}"
            except OSError:
                kept = "left in place"
            log.warning("cannot read the timers file %s (%s); %s; starting with no timers",
                        self.path, e.strerror or e, kept)
            return Loaded([], 1)
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError("not a speakerd timers file")
            if data.get("version") != VERSION:
                raise ValueError(f"version {data.get('version')!r}, this speakerd reads {VERSION}")
            entries = data["items"]
            next_id = int(data.get("next_id", 1))
            if not isinstance(entries, list):
                raise ValueError("items is not a list")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            self._keep_bad(f"it is unreadable ({e})")
            return Loaded([], 1)
        items: list[Item] = []
        bad: list[str] = []
        for entry in entries:
            try:
                items.append(Item.from_json(entry, tz))
            except ItemError as e:
                bad.append(str(e))
        if bad:
            self._keep_bad(f"{len(bad)} of {len(entries)} entries are malformed (first: {bad[0]}); "
                           "the others are kept")
        ids = [int(i.id) for i in items if i.id.isdigit()]
        return Loaded(items, max([next_id, *(n + 1 for n in ids)]))

    def save(self, items: list[Item], next_id: int) -> bool:
        """Write every active item; False (said once until it works again) if the disk refuses."""
        data = {"format": FORMAT, "version": VERSION, "next_id": next_id,
                "items": [i.to_json() for i in items]}
        try:
            write_atomic(self.path, json.dumps(data, indent=1) + "\n")
        except OSError as e:
            if self.writable:
                log.warning("cannot store timers in %s (%s); a restart would lose changes",
                            self.path.parent, e.strerror or e)
            self.writable = False
            return False
        if not self.writable:
            log.info("the timers file is writable again")
        self.writable = True
        return True

    def _keep_bad(self, why: str) -> None:
        bad = self.path.with_name(self.path.name + ".bad")
        try:
            shutil.copyfile(self.path, bad)
            kept = f"kept as {bad}"
        except OSError as e:
            kept = f"could not keep a copy ({e.strerror or e})"
        log.warning("the timers file %s: %s; %s", self.path, why, kept)
