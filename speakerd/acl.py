"""Who besides us can read a file: mode bits and POSIX ACLs, as the kernel decides.

Why: systemd 257 (Debian 13) hands a service its credentials as root:root 0440 with an ACL entry
``user:<service user>:r``. Mode bits alone say "group-readable", which is only the root group and,
through the ACL, speakerd itself; other users cannot read it. Checking the ACL tells that apart
from a key that really is readable by someone else (an ACL entry for another user or group, a
non-root group, or everybody).
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

_XATTR = "system.posix_acl_access"
_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_READ = 4


def _acl_entries(path: Path) -> list[tuple[int, int, int]] | None:
    """(tag, perm, id) of the file's access ACL, or None when it has none (or it cannot be read)."""
    try:
        raw = os.getxattr(path, _XATTR)
    except OSError:  # ENODATA: no ACL; ENOTSUP: a file system without them
        return None
    if len(raw) < 4 or (len(raw) - 4) % 8 or struct.unpack_from("<I", raw)[0] != _VERSION:
        return None
    return [struct.unpack_from("<HHI", raw, 4 + 8 * i) for i in range((len(raw) - 4) // 8)]


def other_readers(path: Path, uid: int | None = None) -> list[str]:
    """Who can read ``path`` besides root, the root group and user ``uid`` (default: us).

    Each reader is described for a log line ("every user", "group 1000", "user 1001"); an empty
    list means the file is private. Raises OSError if the file cannot be examined.
    """
    me = os.geteuid() if uid is None else uid
    st = path.stat()
    readers: list[str] = []
    if st.st_uid not in (0, me) and st.st_mode & stat.S_IRUSR:
        readers.append(f"its owner, user {st.st_uid}")
    entries = _acl_entries(path)
    if entries is None:  # no ACL: the group bits are the owning group's permissions
        if st.st_gid != 0 and st.st_mode & stat.S_IRGRP:
            readers.append(f"group {st.st_gid}")
    else:  # named users, named groups and the owning group are limited by the mask
        mask = next((perm for tag, perm, _ in entries if tag == _MASK), 7)
        for tag, perm, ident in entries:
            if not perm & mask & _READ:
                continue
            if tag == _USER and ident not in (0, me):
                readers.append(f"user {ident} (ACL)")
            elif tag == _GROUP and ident != 0:
                readers.append(f"group {ident} (ACL)")
            elif tag == _GROUP_OBJ and st.st_gid != 0:
                readers.append(f"group {st.st_gid}")
    if st.st_mode & stat.S_IROTH:
        readers.append("every user")
    return readers
