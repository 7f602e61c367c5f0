"""A job claims its folder before it writes to it, so two processes never run one job at once.

The claim is an exclusive, non-blocking `flock` on `<job folder>/.claim`, a file that names the
owner's host and pid. The kernel drops the lock when the owner exits, however it exits (kill -9
included), so a claim left by a dead process is free again at once and is simply taken over: there
is no stale claim to detect or clean up. On a shared file system (NFS) flock is forwarded as a
POSIX lock to the server where the client supports it; where locking is not supported at all the
job runs unclaimed, with a warning.

Releasing removes the file and then unlocks it. A process that opened the file just before the
removal may then lock a file that no longer has a name; it checks that the name still leads to
the file it locked and otherwise tries again, so two owners can never hold one folder.
"""

import errno
import fcntl
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CLAIM_FILE = ".claim"


class FolderClaimed(Exception):
    """The folder is being written by another live process, named in the message."""


@dataclass
class Claim:
    folder: Path
    fd: int | None  # None: the file system does not support locks; the job runs unclaimed
    note: str | None = None  # for the job's log, e.g. why it runs in another folder than asked

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.folder / CLAIM_FILE)
        except FileNotFoundError:  # the folder was removed (a job rejected before any work)
            pass
        os.close(self.fd)  # closing drops the lock
        self.fd = None


# Claims taken for a job before Hydra starts it (callbacks.JobFolders), by absolute folder path;
# the job takes its claim from here instead of claiming again.
HELD: dict[str, Claim] = {}


def held(folder: Path) -> Claim | None:
    return HELD.pop(os.path.abspath(folder), None)


def owner(folder: Path) -> str:
    """Who holds the claim, as its file says ("host pid"), for messages."""
    try:
        text = (folder / CLAIM_FILE).read_text().split()
    except OSError:
        text = []
    return f"pid {text[1]} on {text[0]}" if len(text) == 2 else "another process"


def acquire(folder: Path) -> Claim:
    """Claim `folder` (created if needed) for this process, or raise FolderClaimed."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CLAIM_FILE
    while True:
        try:  # O_NOFOLLOW: a link planted at .claim is never written through
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)  # not inherited by child processes
        except OSError as error:
            if error.errno != errno.ELOOP:
                raise
            raise FolderClaimed(f"{path} is a symbolic link, not this tool's claim") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise FolderClaimed(f"{folder} is in use by {owner(folder)}") from None
            if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                log.warning("cannot lock %s (%s); the job runs without claiming its folder", path, error.strerror)
                return Claim(folder, None)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:  # released and removed between our open and our lock
            same = False
        if same:
            break
        os.close(fd)
    # Overwrite, then cut what a killed owner's longer line left. Not ftruncate(fd, 0) first: on
    # ext4 a file truncated to zero is flushed to disk on close (auto_da_alloc), 2.5 ms per claim.
    text = f"{socket.gethostname()} {os.getpid()}\n".encode()
    os.pwrite(fd, text, 0)
    os.ftruncate(fd, len(text))
    return Claim(folder, fd)


def fresh_folder(base: Path) -> Path:
    """`base`, or `base-1`, `base-2`, ... : the first that did not exist, created now. os.mkdir
    is atomic, so two jobs started in the same second get two folders."""
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(10_000):
        candidate = base if n == 0 else base.with_name(f"{base.name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free folder next to {base} (tried {base.name}-1 to -9999)")
