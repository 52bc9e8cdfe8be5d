"""Make ``kill PID`` (SIGTERM) stop a running campaign instead of hanging it.

Snakemake's SIGTERM handler takes its scheduler's lock, a non-reentrant ``threading.Lock`` that
the main thread holds whenever it finishes or selects jobs. A signal arriving then runs the handler
in the main thread, which waits forever for a lock it holds itself (Snakemake 9.27: 7 of 15 kills
of a busy workflow hung; ``benchmarks/sigterm_hang.py``). Run from a thread, the same handler just
waits for the main thread to let go.
"""

from __future__ import annotations

import signal
import threading


def defer_sigterm_handler() -> None:
    """Call the installed SIGTERM handler from a new thread instead of the interrupted main thread."""
    handler = signal.getsignal(signal.SIGTERM)
    if not callable(handler) or threading.current_thread() is not threading.main_thread():
        return

    def deferred(signum: int, frame: object) -> None:
        threading.Thread(target=handler, args=(signum, frame), daemon=True).start()

    signal.signal(signal.SIGTERM, deferred)
