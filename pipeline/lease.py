"""The run's lease on its run directory: one run at a time writes a run directory.

``RUN_DIR/_LEASE`` holds the running run's owner token, host, pid (and the pid's start time, so a reused pid is
not taken for the holder), when it started and its last heartbeat, refreshed by a daemon thread every
``heartbeat_s`` while the run lives. A second run on the same directory stops at once with ``LeaseHeldError``
naming the holder. The lease is released when the run ends, successfully or not; a run that was killed leaves
its lease behind, and it is recognised as stale:

- on the same host: the holder's pid is not running (or is running a process started at another time);
- on another host: its heartbeat is older than ``stale_after_s`` (the host's processes cannot be seen).

A stale lease is never taken silently: ``force_unlock`` (``gristmill run --force-unlock``) takes it over. When the
holder looks alive, ``force_unlock`` refuses too: stop that run first (or, if you know it is gone and its host
is unreachable, wait ``stale_after_s`` for its heartbeat to age, or delete ``RUN_DIR/_LEASE`` by hand).

How the lease is created:

- local disk: the complete lease is written to a temporary file and hard-linked to ``_LEASE`` (``link`` fails if
  the name exists: an atomic create-if-absent, also on NFS); a filesystem without hard links falls back to
  ``O_CREAT | O_EXCL``. Two runs racing for the same directory: exactly one wins.
- object stores: pyarrow's S3/GCS filesystems cannot send a conditional PUT (``If-None-Match: *``; apache/arrow
  issue 44281), so creation is best effort: look, write our lease, wait ``settle_s``, read it back and compare
  the owner token; the later of two writers wins and the other backs off. A rival can slip in only between its
  own look and its own PUT landing, one look and one PUT on the same store: by default the settle is
  ``SETTLE_MARGIN`` times what our look and PUT took (at least ``MIN_SETTLE_S``), so it scales with the store
  instead of charging every run a fixed second. Remaining race: a second run whose PUT lands more than
  ``settle_s`` after its own look (a stalled client) can overwrite a lease its rival has already confirmed. Both
  then run, but before every commit a run reads the lease back (``check``), so the one it does not name stops
  (``LeaseLostError``) without committing; their parts are the same bytes either way. A takeover
  (``force_unlock``) of a stale lease on an object store is delete-then-create with the same best effort.
  The lease is read back with a HEAD and a GET: pyarrow's ``open_input_file`` and ``open_input_stream`` both ask
  the size first, and neither takes a known one.

The settle overlaps reads: ``acquire(confirm=False)`` returns after the look and the PUT and leaves the wait and
the read-back to ``confirm()``, so a run spends the settle on reads it makes anyway (its plan check), and calls
``confirm()`` strictly before its first write or delete in the run directory. Until then it has changed nothing
there but ``_LEASE``: a run that loses at ``confirm()`` stops with ``LeaseHeldError`` having written nothing else.
What it read meanwhile nobody was writing (but for the race above): a writer holds a confirmed lease, which our
look would have found. Locally the create is atomic and ``confirm()`` only starts the heartbeat. The run
(``pipeline/run.py`` ``LeaseConfirmation``) confirms on a thread of its own and has every write wait for it, so
its first segment computes during the settle while nothing of it is written before the confirmation.

A heartbeat reads the lease and rewrites it if it is still ours; a holder that was only stalled (its heartbeat
aged past ``stale_after_s``, it was taken over) and wakes between that read and that write puts its own lease
back. The run that took over then finds a lease not naming it at its next commit and stops; one of the two goes on.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone

from gristmill.core import storage

HEARTBEAT_S = 10.0
STALE_AFTER_S = 120.0
# The settle on an object store: SETTLE_MARGIN x the measured look + PUT, never under MIN_SETTLE_S.
SETTLE_MARGIN = 20.0
MIN_SETTLE_S = 0.2


class LeaseHeldError(RuntimeError):
    """Another run holds the run directory's lease; the message names it."""


class LeaseLostError(RuntimeError):
    """This run's lease was taken over (``--force-unlock`` elsewhere): it must not commit anything more."""


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    current = _process_start(pid)
    return started is None or current is None or current == started


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe(holder: dict, now: float | None = None) -> str:
    now = time.time() if now is None else now
    beat = holder.get("heartbeat", holder.get("started", now))
    return (f"run {holder.get('owner', '?')[:8]} of pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
            f"since {_iso(holder.get('started', now))}, last heartbeat {now - beat:.0f}s ago")


class RunLease:
    """``with RunLease(run_dir.lease_path).acquire(): ...`` holds the lease for the block."""

    def __init__(self, path, heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S,
                 settle_s: float | None = None, log=print):
        self.location = storage.resolve(path)
        self.heartbeat_s, self.stale_after_s, self.settle_s = heartbeat_s, stale_after_s, settle_s
        self.log = log
        now = time.time()
        self.record = {"owner": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(),
                       "pid_start": _process_start(os.getpid()), "started": now, "heartbeat": now,
                       "heartbeat_s": heartbeat_s}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None  # the heartbeat, from confirm() on
        self._settled_at: float | None = None  # when the settle after our PUT ends (perf_counter), until confirmed
        self.lost: str | None = None

    # --- reading the holder -------------------------------------------------------------------------------
    def read(self) -> dict | None:
        """The lease as written now; None if there is none. A lease being created (empty) reads as held."""
        try:
            text = self.location.read_text()
        except FileNotFoundError:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return {"owner": "?", "host": "?", "pid": "?", "unreadable": True, "heartbeat": time.time()}

    def stale_reason(self, holder: dict, now: float | None = None) -> str | None:
        """Why the holder is dead, or None when it looks alive."""
        now = time.time() if now is None else now
        if holder.get("unreadable"):
            return None
        if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
            if not _pid_alive(holder["pid"], holder.get("pid_start")):
                return f"pid {holder['pid']} is not running on this host"
            return None
        age = now - float(holder.get("heartbeat", 0))
        if age > self.stale_after_s:
            return f"its heartbeat is {age:.0f}s old (stale after {self.stale_after_s:.0f}s)"
        return None

    # --- acquiring and releasing --------------------------------------------------------------------------
    def acquire(self, force_unlock: bool = False, confirm: bool = True) -> "RunLease":
        """Create the lease (or refuse with ``LeaseHeldError``). ``confirm=False``: on an object store, return
        after the PUT; the caller must call ``confirm()`` before it writes or deletes anything in the run
        directory."""
        started = time.perf_counter()
        holder = self.read()
        if holder is not None:
            self._take_over(holder, force_unlock)
            started = None  # the lease was removed: look again just before writing ours
        self._create(started)
        if confirm:
            self.confirm()
        return self

    def confirm(self) -> None:
        """Wait out what is left of the settle, read the lease back (object stores) and start the heartbeat;
        ``LeaseHeldError`` if a rival's lease replaced ours. Once confirmed, calling it again does nothing."""
        if self._thread is not None:
            return
        if self._settled_at is not None:
            time.sleep(max(0.0, self._settled_at - time.perf_counter()))
            self._settled_at = None
            current = self.read()
            if current is None or current.get("owner") != self.record["owner"]:
                self.lost = describe(current) if current else "nobody (the lease was deleted)"
                raise LeaseHeldError(f"{self.location} is held by {self.lost}: another run started on this "
                                     "run directory at the same time; wait for it or use another --run-dir")
        self._thread = threading.Thread(target=self._beat, name=f"lease {self.location}", daemon=True)
        self._thread.start()

    def _take_over(self, holder: dict, force_unlock: bool) -> None:
        reason = self.stale_reason(holder)
        who = describe(holder)
        if reason is None:
            hint = (" --force-unlock only takes over the lease of a dead run: stop that run first" if force_unlock
                    else " wait for it to finish, or use another --run-dir")
            raise LeaseHeldError(f"{self.location} is held by {who}, which looks alive;{hint}")
        if not force_unlock:
            raise LeaseHeldError(f"{self.location} is held by {who}, which looks dead ({reason}); rerun with "
                                 "--force-unlock to take it over")
        self.log(f"lease: taking over {self.location} from {who} ({reason})")
        self._remove_if(holder.get("owner"))

    def _create(self, looked_since: float | None) -> None:
        """Create our lease if there is none (``looked_since``: when the look that found none started; None:
        look now). On an object store, record when the settle ends for ``confirm``."""
        data = json.dumps(self.record, sort_keys=True).encode()
        if self.location.is_local:
            if not _create_local(self.location.path, data):
                self._refuse_raced()
            return
        if looked_since is None:
            looked_since = time.perf_counter()
            if self.location.exists():
                self._refuse_raced()
        self.location.write_bytes(data)
        now = time.perf_counter()
        self._settled_at = now + self._settle(now - looked_since)

    def _refuse_raced(self) -> None:
        holder = self.read() or {}
        raise LeaseHeldError(f"{self.location} is held by {describe(holder)}: another run started on this "
                             "run directory at the same time; wait for it or use another --run-dir")

    def _settle(self, look_and_put_s: float) -> float:
        """How long a rival's look and PUT could still be in flight: ``settle_s`` when given, else scaled from
        ours."""
        if self.settle_s is not None:
            return self.settle_s
        return max(MIN_SETTLE_S, SETTLE_MARGIN * look_and_put_s)

    def _remove_if(self, owner: str | None) -> None:
        """Remove the lease if it still names ``owner`` (not a lease someone created meanwhile)."""
        if self.location.is_local:
            aside = f"{self.location.path}.{self.record['owner']}"
            try:
                os.rename(self.location.path, aside)  # atomically: whatever is there now, and only once
            except FileNotFoundError:
                return
            with open(aside, encoding="utf-8", errors="replace") as fh:
                moved = fh.read()
            if _owner_of(moved) != owner:
                try:  # a lease created since we looked: put it back (unless yet another one exists)
                    os.link(aside, self.location.path)
                except FileExistsError:
                    pass
            os.remove(aside)
            return
        current = self.read()
        if current is not None and current.get("owner") == owner:
            self.location.delete()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.lost is None:
            self._remove_if(self.record["owner"])

    def check(self) -> None:
        """Raise ``LeaseLostError`` unless the lease still names this run (read now, not at the last beat)."""
        self.confirm()
        if self.lost is None:
            current = self.read()
            if current is None or current.get("owner") != self.record["owner"]:
                self.lost = describe(current) if current else "nobody (the lease was deleted)"
        if self.lost is not None:
            raise LeaseLostError(f"{self.location}: this run's lease was taken over by {self.lost}; "
                                 "it stops without committing more")

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.refresh()
            except OSError as exc:  # a transient storage error: the next beat tries again
                self.log(f"lease: heartbeat not written ({exc})")
            if self.lost is not None:
                return

    def refresh(self) -> None:
        """Write a new heartbeat, if the lease is still ours."""
        current = self.read()
        if current is None or current.get("owner") != self.record["owner"]:
            self.lost = describe(current) if current else "nobody (the lease was deleted)"
            self.log(f"lease: {self.location} lost to {self.lost}")
            return
        self.record["heartbeat"] = time.time()
        self.location.write_bytes(json.dumps(self.record, sort_keys=True).encode())

    def __enter__(self) -> "RunLease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _owner_of(text: str) -> str | None:
    try:
        return json.loads(text).get("owner")
    except ValueError:
        return None


def _create_local(path: str, data: bytes) -> bool:
    """Create ``path`` holding ``data`` only if it does not exist; False if it does."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with open(tmp, "wb") as fh:
        fh.write(data)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links on this filesystem
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return True
    finally:
        os.remove(tmp)
