"""The key file's privacy check, on real files with real POSIX ACLs (setfacl, from the acl package).

systemd 257 (Debian 13) hands a credential over as root:root 0440 with an ACL entry for the service
user: private, and must not draw a warning. An ACL entry, a group or the world that lets anybody
else read the key must.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from speakerd import config
from speakerd.acl import other_readers

needs_setfacl = pytest.mark.skipif(shutil.which("setfacl") is None, reason="setfacl missing (apt: acl)")
ME = os.geteuid()
OTHER_UID = 65534 if ME != 65534 else 65533  # nobody
OTHER_GID = 65534 if os.getegid() != 65534 else 65533


def key(tmp_path: Path, mode: int, *acl: str) -> Path:
    creds = tmp_path / "creds"
    creds.mkdir(exist_ok=True)
    path = creds / config.CREDENTIAL_NAME
    path.unlink(missing_ok=True)  # a fresh file: no ACL left from before
    path.write_text("AIza-secret\n")
    os.chmod(path, mode)
    for entry in acl:
        subprocess.run(["setfacl", "-m", entry, str(path)], check=True)
    return path


def warnings(path: Path) -> list[str]:
    cfg_file = path.parent.parent / "speakerd.toml"
    cfg_file.write_text("")
    cfg = config.load(cfg_file, env={"CREDENTIALS_DIRECTORY": str(path.parent)})
    assert cfg.api_key is not None and cfg.api_key_source == "credential"
    return [w for w in cfg.warnings if "credential" in w]


@needs_setfacl
def test_systemd_257_credential_root_0440_with_an_acl_for_us_is_private(tmp_path: Path) -> None:
    path = key(tmp_path, 0o440, f"u:{ME}:r")
    if path.stat().st_uid != 0:
        pytest.skip("needs root to make a root-owned file, as systemd does")
    assert other_readers(path) == []
    assert warnings(path) == []


@needs_setfacl
def test_an_acl_entry_for_another_user_or_group_is_a_real_warning(tmp_path: Path) -> None:
    path = key(tmp_path, 0o440, f"u:{ME}:r", f"u:{OTHER_UID}:r")
    assert other_readers(path) == [f"user {OTHER_UID} (ACL)"]
    (line,) = warnings(path)
    assert line.startswith(f"credential gemini-api-key: readable by user {OTHER_UID} (ACL); ")
    assert "AIza" not in line
    path = key(tmp_path, 0o400, f"g:{OTHER_GID}:r")
    assert other_readers(path) == [f"group {OTHER_GID} (ACL)"]


@needs_setfacl
def test_the_acl_mask_limits_what_entries_grant(tmp_path: Path) -> None:
    path = key(tmp_path, 0o400, f"u:{OTHER_UID}:r", "m::---")  # an entry the mask disables
    assert other_readers(path) == []
    assert warnings(path) == []


def test_plain_modes_without_an_acl(tmp_path: Path) -> None:
    path = key(tmp_path, 0o600)
    assert other_readers(path) == [] and warnings(path) == []
    path = key(tmp_path, 0o644)
    assert other_readers(path) == ["every user"]
    (line,) = warnings(path)
    assert "readable by every user" in line and "chmod 600" in line
    if ME == 0:  # a non-root group that can read: only root can give the file away
        os.chown(path, -1, OTHER_GID)
        os.chmod(path, 0o640)
        assert other_readers(path) == [f"group {OTHER_GID}"]
        os.chown(path, OTHER_UID, 0)
        os.chmod(path, 0o400)
        assert other_readers(path) == [f"its owner, user {OTHER_UID}"]
