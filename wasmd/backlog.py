"""A hint from the runtime's worker threads to the server: are more calls queued behind this one?

When a worker answers a call and more are waiting in its queue, the answer need not go out
at once: the server appends it to the connection's outbox and lets the event loop's writer
send everything that accumulates in one system call. When nothing is queued, the answer is
sent directly from the worker thread, because then latency is what matters. The hint is a
thread-local, so the server reads it without knowing about the runtime.
"""

from __future__ import annotations

import threading


class Backlog(threading.local):
    more_queued: bool = False


backlog = Backlog()
