"""One worker, a bounded queue: requests wait their turn instead of failing, and beyond the bound get a 503.

A CPU runs one restoration at a time well (the models use every thread they are given); requests from
several users are queued in order. ``submit`` refuses with ``QueueFull`` when ``max_waiting`` jobs
already wait, so a flood of requests is answered at once instead of piling up memory.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from dataclasses import dataclass, field


class QueueFull(Exception):
    pass


def new_id() -> str:
    """A job's id: 128 random bits, so one request's outputs cannot be found by guessing."""
    return secrets.token_hex(16)


@dataclass
class Job:
    id: str
    fn: object = field(repr=False)
    status: str = "queued"  # queued, running, done, failed
    progress: float = 0.0  # 0..1 while running
    message: str = ""
    result: object = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def report(self, fraction: float, message: str = "") -> None:
        self.progress, self.message = max(0.0, min(1.0, fraction)), message

    def view(self) -> dict:
        return {"id": self.id, "status": self.status, "progress": round(self.progress, 3), "message": self.message,
                "error": self.error}


class JobQueue:
    """``submit(fn)`` -> Job; the worker calls ``fn(job)`` (it may call ``job.report``) and stores its result.
    An exception ending in a user error becomes the job's ``error`` (its message), never a dead worker."""

    def __init__(self, max_waiting: int = 8, keep: int = 200, user_errors: tuple = ()):
        self.max_waiting, self.keep, self.user_errors = max_waiting, keep, user_errors
        self._queue: queue.Queue = queue.Queue()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._run, name="facesr-worker", daemon=True)
        self._worker.start()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def alive(self) -> bool:
        return self._worker.is_alive()

    def submit(self, fn, job_id: str | None = None) -> Job:
        """``job_id``: a token made beforehand with ``new_id`` (e.g. to name the job's folder)."""
        with self._lock:
            if self._queue.qsize() >= self.max_waiting:
                raise QueueFull(f"{self._queue.qsize()} requests are waiting; try again shortly")
            job = Job(job_id or new_id(), fn)
            self._jobs[job.id] = job
            for old in sorted(self._jobs.values(), key=lambda j: j.created)[: max(0, len(self._jobs) - self.keep)]:
                if old.done.is_set():
                    del self._jobs[old.id]
            self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            job.status = "running"
            try:
                job.result = job.fn(job)
                job.status, job.progress = "done", 1.0
            except self.user_errors as exc:
                job.status, job.error = "failed", str(exc)
            except Exception as exc:  # a bug must not kill the worker: the request fails, the server lives
                job.status, job.error = "failed", f"internal error: {type(exc).__name__}: {exc}"
            finally:
                job.fn = None
                job.done.set()
