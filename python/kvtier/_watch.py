"""_watch.py — one background thread per store that resolves tickets' concurrent.futures.Futures.

The thread sleeps in select() on the store's eventfd (kvt_eventfd) and on a
pipe of its own (new tickets, stop), then kvt_poll()s the tickets it was
given and resolves the futures of those complete. It holds no reference to
the Store (only its handle), so a store can still be collected; the store's
finalizer stops it before kvt_close. A one-second select timeout covers
wake-ups lost to another reader of the same eventfd.
"""
import os
import select
import threading

from ._lib import lib

_BACKSTOP_S = 1.0


class Watcher:
    def __init__(self, handle, einprogress):
        self._h = handle
        self._einprogress = einprogress
        self._efd = lib.kvt_eventfd(handle)
        if self._efd < 0:
            from .errors import make_error
            raise make_error(self._efd)
        self._lock = threading.Lock()
        self._tickets = {}  # id -> Ticket, pending with a future
        self._stopping = False
        self._rd, self._wr = os.pipe()
        os.set_blocking(self._rd, False)
        os.set_blocking(self._wr, False)
        self._thread = threading.Thread(target=self._run, name="kvtier-watcher", daemon=True)
        self._thread.start()

    def add(self, ticket):
        with self._lock:
            if self._stopping:
                return False
            self._tickets[ticket.id] = ticket
        self._wake()
        return True

    def _wake(self):
        try:
            os.write(self._wr, b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full: the thread is woken already

    def _run(self):
        while True:
            try:
                ready = select.select([self._efd, self._rd], [], [], _BACKSTOP_S)[0]
            except (OSError, ValueError):
                ready = []
            if self._stopping:  # before any read: stop() may have closed the pipe
                return
            if self._rd in ready:
                try:
                    os.read(self._rd, 4096)
                except (BlockingIOError, OSError):
                    pass
            if self._efd in ready:
                try:
                    os.read(self._efd, 8)
                except (BlockingIOError, OSError):
                    pass  # another reader took the count
            self._collect()

    def _collect(self):
        with self._lock:
            tickets = list(self._tickets.values())
        for t in tickets:
            with t._lock:
                if t._finished:
                    done = True
                else:
                    rc = lib.kvt_poll(self._h, t.id)
                    done = rc != self._einprogress
                    if done:
                        t._finish(rc)
            if done:
                with self._lock:
                    self._tickets.pop(t.id, None)
                t._resolve()

    def stop(self, drain):
        """Stops the thread. drain: first wait for every ticket it watches and
        resolve their futures (the store is still open); otherwise they are
        left to the caller (Ticket._closed)."""
        with self._lock:
            if self._stopping:
                return []
            self._stopping = True
        self._wake()
        if self._thread is not threading.current_thread():
            self._thread.join()
        os.close(self._rd)
        os.close(self._wr)
        with self._lock:
            tickets, self._tickets = list(self._tickets.values()), {}
        if drain:
            for t in tickets:
                with t._lock:
                    if not t._finished:
                        t._finish(lib.kvt_wait(self._h, t.id, -1))
                t._resolve()
            return []
        return tickets
