"""In-process wake-up: a commit that queued outbox rows or opened a response sets the event, so
the worker thread hands the first message to the provider at once instead of at its next poll.
(Across processes on PostgreSQL the poll interval bounds the delay; LISTEN/NOTIFY comes later.)"""

from __future__ import annotations

import threading

work_ready = threading.Event()
