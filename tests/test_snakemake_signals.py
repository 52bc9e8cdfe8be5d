"""SIGTERM while Snakemake's scheduler holds its lock stops the campaign instead of hanging it."""

from __future__ import annotations

import os
import signal
import threading
from types import SimpleNamespace

import pytest
from snakemake.scheduling.job_scheduler import JobScheduler

from crystal_campaign.snakemake_signals import defer_sigterm_handler


@pytest.fixture
def scheduler_state():
    """The scheduler state Snakemake's own SIGTERM handler touches, with that handler installed."""
    state = SimpleNamespace(_lock=threading.Lock(), _open_jobs=threading.Semaphore(0), _user_kill=None)
    previous = signal.signal(signal.SIGTERM, lambda *args: JobScheduler.exit_gracefully(state, *args))
    yield state
    signal.signal(signal.SIGTERM, previous)


@pytest.mark.timeout(30)
def test_sigterm_while_the_scheduler_holds_its_lock_asks_for_a_graceful_exit(scheduler_state):
    defer_sigterm_handler()
    with scheduler_state._lock:  # the main thread finishing or selecting jobs
        os.kill(os.getpid(), signal.SIGTERM)  # undeferred, Snakemake's handler waits here forever
        assert scheduler_state._user_kill is None
    # The scheduler's loop wakes on the semaphore and then reads the request.
    assert scheduler_state._open_jobs.acquire(timeout=10)
    assert scheduler_state._user_kill == "graceful"


def test_deferring_outside_the_main_thread_leaves_the_handler_alone(scheduler_state):
    installed = signal.getsignal(signal.SIGTERM)
    errors: list[Exception] = []

    def defer_in_worker() -> None:
        try:
            defer_sigterm_handler()
        except Exception as error:  # e.g. signal.signal's ValueError outside the main thread
            errors.append(error)

    worker = threading.Thread(target=defer_in_worker)
    worker.start()
    worker.join()
    assert errors == []
    assert signal.getsignal(signal.SIGTERM) is installed
