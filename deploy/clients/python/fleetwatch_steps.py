"""FleetWatch step reporter: tell the node's FleetWatch agent how long each training step took.

Standard library only (Python 3.8+). Call it once per step from the training loop; it never blocks the loop,
never raises into it, and costs nothing measurable when the agent is down.

How it works: ``report()`` appends to a bounded in-memory queue (when full, the oldest report is dropped and
counted) and returns at once. A daemon thread sends queued reports as one JSON array per request to the agent's
loopback endpoint ``POST http://127.0.0.1:9478/v1/steps``, with a short timeout. When the agent does not answer, the
thread drops the batch in flight (counted), backs off (0.5 s doubling to 30 s) and keeps only the newest
``queue_size`` reports meanwhile; nothing in the training thread ever waits on the network.

README snippet (PyTorch)::

    from fleetwatch_steps import StepReporter

    reporter = StepReporter(
        job=os.environ.get("FLEETWATCH_JOB", "my-job"),
        rank=torch.distributed.get_rank(),
        gpu=int(os.environ.get("LOCAL_RANK", 0)),
        peer_group=f"pp{pipeline_stage}",      # ranks doing the same work; default "all"
    )
    for step, batch in enumerate(loader):
        t0 = time.perf_counter()
        loss = model(batch); loss.backward()
        t1 = time.perf_counter()
        optimizer.step(); optimizer.zero_grad()
        torch.cuda.synchronize()               # optional: makes the duration the GPU's, not the launch's
        t2 = time.perf_counter()
        reporter.report(step, (t2 - t0) * 1000.0,
                        sections={"fwd_bwd": (t1 - t0) * 1000.0, "optimizer": (t2 - t1) * 1000.0})
    reporter.close()                            # training ended normally: tells the agent (else the job's silence
                                                # is reported as a hang) and flushes for up to 1 s

Environment: ``FLEETWATCH_STEPS_URL`` overrides the endpoint (default ``http://127.0.0.1:9478``);
``FLEETWATCH_STEPS_DISABLED=1`` turns every call into a no-op.

Fields sent (the agent validates them and answers 400 naming a bad field): ``job``, ``rank``, ``step``,
``duration_ms`` (the rank's own time for the step), ``gpu`` (index on the node), ``peer_group``,
``end_unix_ms`` (when the step ended, wall clock), ``sections`` (name to milliseconds), ``final`` (true on the
rank's last report, sent by ``close()``; when every rank of a job has sent it, the job has ended, not hung).
"""

import collections
import http.client
import json
import os
import threading
import time
import urllib.parse

__all__ = ["StepReporter"]

DEFAULT_URL = "http://127.0.0.1:9478"
_PATH = "/v1/steps"


class StepReporter:
    """Non-blocking step reporter; one per training process (rank)."""

    def __init__(self, job, rank, gpu=None, peer_group="all", url=None, queue_size=1024,
                 max_batch=64, timeout_s=0.5, max_backoff_s=30.0):
        self.job = str(job)
        self.rank = int(rank)
        if gpu is None:
            gpu = int(os.environ.get("LOCAL_RANK", "0") or 0)
        self.gpu = int(gpu)
        self.peer_group = str(peer_group)
        self.dropped = 0          # reports dropped because the queue was full (agent down or slow)
        self.sent = 0             # reports the agent accepted
        self.rejected = 0         # reports the agent refused (400: a bad field; see last_error)
        self.failures = 0         # requests that failed (connection refused, timeout)
        self.last_error = None
        self._timeout = float(timeout_s)
        self._max_batch = max(1, int(max_batch))
        self._max_backoff = float(max_backoff_s)
        self._disabled = os.environ.get("FLEETWATCH_STEPS_DISABLED", "") not in ("", "0")
        self._queue = collections.deque(maxlen=max(1, int(queue_size)))
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._conn = None
        self._last = None         # the last report, repeated with "final": true by close()
        self._healthy = True      # the last request reached the agent; when not, close() does not wait to flush
        parsed = urllib.parse.urlsplit(url or os.environ.get("FLEETWATCH_STEPS_URL") or DEFAULT_URL)
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or 80
        self._thread = None
        if not self._disabled:
            self._thread = threading.Thread(target=self._run, name="fleetwatch-steps", daemon=True)
            self._thread.start()

    def report(self, step, duration_ms, sections=None, end_unix_ms=None):
        """Queues one completed step. Returns at once; never raises."""
        if self._disabled:
            return
        try:
            item = {
                "job": self.job,
                "rank": self.rank,
                "step": int(step),
                "duration_ms": float(duration_ms),
                "gpu": self.gpu,
                "peer_group": self.peer_group,
                "end_unix_ms": float(end_unix_ms) if end_unix_ms is not None else time.time() * 1000.0,
            }
            if sections:
                item["sections"] = {str(k): float(v) for k, v in sections.items()}
            with self._lock:
                if len(self._queue) == self._queue.maxlen:
                    self.dropped += 1   # the deque drops the oldest on append
                self._queue.append(item)
                self._last = item
                self._idle.clear()
            self._wake.set()
        except Exception as exc:  # noqa: BLE001 - a reporter must never break training
            self.last_error = repr(exc)

    def close(self, timeout_s=1.0, final=True):
        """Ends reporting: with ``final`` (training ended normally; pass False when it did not) repeats the last report
        marked final, sends what is queued for up to ``timeout_s`` (not at all while the agent is away) and stops the
        thread. Never raises."""
        try:
            if self._thread is not None:
                if final:
                    with self._lock:
                        if self._last is not None and not self._last.get("final"):
                            self._last = dict(self._last, final=True)
                            self._queue.append(self._last)
                            self._idle.clear()
                    self._wake.set()
                if self._healthy:
                    self._idle.wait(max(0.0, float(timeout_s)))
                self._stop.set()
                self._wake.set()
                self._thread.join(max(0.0, float(timeout_s)))
        except Exception as exc:  # noqa: BLE001
            self.last_error = repr(exc)

    def _take(self):
        with self._lock:
            batch = []
            while self._queue and len(batch) < self._max_batch:
                batch.append(self._queue.popleft())
            if not batch:
                self._idle.set()
            return batch

    def _run(self):
        backoff = 0.0
        while not self._stop.is_set():
            if backoff > 0:
                # Agent down: wait (reports keep queueing, oldest dropped when full), then try again.
                self._stop.wait(backoff)
            else:
                self._wake.wait(0.5)
            self._wake.clear()
            while not self._stop.is_set() or not self._idle.is_set():
                batch = self._take()
                if not batch:
                    break
                self._healthy = self._send(batch)
                if self._healthy:
                    backoff = 0.0
                else:
                    backoff = min(self._max_backoff, max(0.5, backoff * 2))
                    with self._lock:
                        self.dropped += len(batch)
                        if not self._queue:
                            self._idle.set()
                    if self._stop.is_set():
                        with self._lock:
                            self.dropped += len(self._queue)
                            self._queue.clear()
                            self._idle.set()
                    break

    def _send(self, batch):
        try:
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            body = json.dumps(batch, separators=(",", ":")).encode("utf-8")
            self._conn.request("POST", _PATH, body=body, headers={"Content-Type": "application/json"})
            response = self._conn.getresponse()
            text = response.read()
            if 200 <= response.status < 300:
                self.sent += len(batch)
            elif 400 <= response.status < 500:
                # Our data is wrong; retrying will not help. Count it and keep going.
                self.rejected += len(batch)
                self.last_error = "HTTP %d: %s" % (response.status, text[:200].decode("utf-8", "replace"))
            else:
                raise OSError("HTTP %d" % response.status)
            return True
        except Exception as exc:  # noqa: BLE001 - refused, timed out, reset: the agent is away
            self.failures += 1
            self.last_error = repr(exc)
            try:
                if self._conn is not None:
                    self._conn.close()
            except Exception:  # noqa: BLE001
                pass
            self._conn = None
            return False
