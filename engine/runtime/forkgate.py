"""Fork a job only while no other thread of this process is inside torch.

A forked child inherits every lock in the state it had at the instant of the fork,
but only the forking thread. If another thread held one of torch's locks then (the
default CPU generator's mutex while it runs ``torch.randn``, say), the child's first
call that needs that lock waits forever. Dash's DiskcacheManager forks each job from
a request thread of a threaded server whose other requests may be running torch:
measured here, a child that draws random numbers hung in 18 of 20 forks made while
two other threads drew random numbers, and in none of 20 forks made behind this gate
(tests/unit/test_forkgate.py holds the second).

The gate counts the threads that are *inside* (a request being handled); ``fork``
waits until every other thread has left, keeps new ones out while it forks, then
lets them in again. Threads that are themselves waiting to fork are parked, not in
torch, so two jobs started at once do not wait for each other.

    gate = ForkGate()
    server.before_request(gate.enter); server.teardown_request(gate.leave)
    pid = gate.fork(lambda: start_child_process())
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class ForkGate:
    def __init__(self, timeout_s: float = 30.0):
        if not timeout_s > 0:
            raise ValueError(f"timeout_s: expected a positive number of seconds, got {timeout_s!r}")
        self.timeout_s = timeout_s
        self._cond = threading.Condition()
        self._inside = 0     # threads inside and not parked to fork
        self._forkers = 0    # threads waiting to fork or forking
        self._local = threading.local()

    @property
    def inside(self) -> int:
        with self._cond:
            return self._inside

    def enter(self, *_args) -> None:
        """The calling thread starts work that may use torch (waits while a fork runs)."""
        if getattr(self._local, "inside", False):
            return
        with self._cond:
            if not self._cond.wait_for(lambda: self._forkers == 0, self.timeout_s):
                log.warning("fork gate: a fork took longer than %.0f s; letting a request in", self.timeout_s)
            self._inside += 1
        self._local.inside = True

    def leave(self, *_args) -> None:
        """The calling thread's work is over (a no-op for a thread that did not enter)."""
        if not getattr(self._local, "inside", False):
            return
        self._local.inside = False
        with self._cond:
            self._inside -= 1
            self._cond.notify_all()

    def fork(self, start: Callable[[], T]) -> T:
        """Run ``start`` (which forks) once no other thread is inside; return its result.

        After ``timeout_s`` with a thread still inside (a very long request), it forks
        anyway and logs a warning rather than hold every job back.
        """
        mine = getattr(self._local, "inside", False)
        with self._cond:
            self._forkers += 1
            if mine:
                self._inside -= 1
            if not self._cond.wait_for(lambda: self._inside == 0, self.timeout_s):
                log.warning("fork gate: %d thread(s) still inside after %.0f s; forking anyway",
                            self._inside, self.timeout_s)
        try:
            return start()
        finally:
            with self._cond:
                self._forkers -= 1
                if mine:
                    self._inside += 1
                self._cond.notify_all()


def release_listening_sockets() -> list[int]:
    """In a forked job: let go of every listening socket inherited from the server.

    A fork copies every file descriptor whatever its close-on-exec flag, so a job forked
    by the web server holds the server's listening socket; if the server is restarted
    while an orphaned job runs, the new server cannot bind ("Address already in use").
    Each listening socket's descriptor is pointed at /dev/null (``dup2``) rather than
    closed, so a stale socket object in the child that closes it later cannot close a
    file the job opened under the same number. Returns the descriptors released.
    """
    import os
    import socket
    import stat

    released = []
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: try the usual range
        fds = list(range(3, 256))
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in fds:
            if fd == null or fd < 3:
                continue
            try:
                if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                    continue
                sock = socket.socket(fileno=fd)
            except OSError:
                continue
            try:
                listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            except OSError:
                listening = 0
            finally:
                sock.detach()
            if listening:
                os.dup2(null, fd)
                released.append(fd)
    finally:
        os.close(null)
    return released
