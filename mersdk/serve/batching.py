"""Dynamic batching: requests from many connections share one model's forward passes.

A bounded queue (a full queue is refused at once: the server answers 429), and one worker thread per
model instance that takes the first waiting job, waits at most ``max_wait_s`` for more, up to
``max_batch``, and runs them with one ``predict_batch``, as Triton's and TorchServe's dynamic batchers
do. A job whose caller has given up (timeout, disconnect) is skipped. Only the worker thread touches
the Recognizer, so it is never used from two threads at once.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import MersdkError

log = logging.getLogger("mersdk.serve")


class ServerBusyError(MersdkError):
    """The request queue is full; try again after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ShuttingDownError(MersdkError):
    """The server is shutting down and takes no new work."""


@dataclass
class Job:
    """One request: ``kind`` is "predict" or "analyze"; ``options`` are analyze's keyword options."""

    kind: str
    audio: Any
    lyrics: Any
    options: dict[str, Any] = field(default_factory=dict)
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


_STOP = object()


class Batcher:
    """Owns one Recognizer and the thread that runs it.

    ``on_batch(n, seconds)`` is called after each model call with the number of jobs it served.
    """

    def __init__(
        self,
        recognizer,
        *,
        max_batch: int = 8,
        max_wait_s: float = 0.01,
        max_queue: int = 64,
        on_batch: Callable[[int, float], None] | None = None,
    ):
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_s >= 0")
        self.recognizer = recognizer
        self.max_batch, self.max_wait_s = int(max_batch), float(max_wait_s)
        self._queue: queue.Queue = queue.Queue(maxsize=int(max_queue))
        self._on_batch = on_batch
        self._closing = False
        self._lock = threading.Lock()  # orders submit() against close(): nothing is queued after _STOP
        # seconds per job, smoothed: what a full queue tells a client to wait (Retry-After)
        self._seconds_per_job = 0.05
        self._thread = threading.Thread(target=self._work, name="mersdk-serve-batcher", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Jobs waiting (not yet taken by the worker)."""
        return self._queue.qsize()

    def retry_after_s(self) -> int:
        return max(1, int(round(self.depth * self._seconds_per_job + 0.5)))

    def submit(self, job: Job) -> concurrent.futures.Future:
        with self._lock:
            if self._closing:
                raise ShuttingDownError("the server is shutting down")
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                raise ServerBusyError(
                    f"the request queue is full ({self._queue.maxsize} waiting)", self.retry_after_s()
                ) from None
        return job.future

    def close(self, timeout: float | None = None) -> bool:
        """Take no new jobs, finish every queued one, stop the worker; True when it stopped in time."""
        with self._lock:
            if not self._closing:
                self._closing = True
                self._queue.put(_STOP)  # blocks only while the queue is full; the worker is draining it
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------
    def _work(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            live = [j for j in batch if j.future.set_running_or_notify_cancel()]
            if not live:
                continue
            t0 = time.perf_counter()
            self._run(live)
            dt = time.perf_counter() - t0
            self._seconds_per_job = 0.8 * self._seconds_per_job + 0.2 * dt / len(live)
            if self._on_batch is not None:
                self._on_batch(len(live), dt)

    def _run(self, jobs: list[Job]) -> None:
        predict = [j for j in jobs if j.kind == "predict"]
        for j in jobs:
            if j.kind == "analyze":
                self._run_one(j)
        if len(predict) == 1:
            self._run_one(predict[0])
        elif predict:
            try:
                results = self.recognizer.predict_batch([(j.audio, j.lyrics) for j in predict])
            except MersdkError:
                # one bad input fails the whole batch: run each alone so only that one gets the error
                for j in predict:
                    self._run_one(j)
                return
            except Exception as e:
                log.exception("predict_batch failed")
                for j in predict:
                    j.future.set_exception(e)
                return
            for j, r in zip(predict, results):
                j.future.set_result(r)

    def _run_one(self, job: Job) -> None:
        rec = self.recognizer
        try:
            if job.kind == "analyze":
                result = rec.analyze(job.audio, job.lyrics, **job.options)
            else:
                result = rec.predict(job.audio, job.lyrics)
        except Exception as e:
            if not isinstance(e, MersdkError):
                log.exception("%s failed", job.kind)
            job.future.set_exception(e)
        else:
            job.future.set_result(result)
