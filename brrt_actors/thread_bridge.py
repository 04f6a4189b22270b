"""Calls from a thread whose hub does not run the app: handed to the hub that does.

An app's actors are worker greenlets of one thread's gevent hub, the *owner*: a greenlet
runs only in the thread that made it. Under ``brrt serve``, gunicorn with brrt's worker, or
any greenlet server in a monkey-patched process, every call comes from the owner thread and
goes straight on: the app compares one thread id per request, nothing more.

A threaded WSGI server (wsgiref with ``ThreadingMixIn``, waitress ...) calls the app from
real threads of its own, each with a hub nothing runs. For them the app's `ThreadBridge`:

- owns a hub thread (``brrt-hub``), started by `App.start` when the process is not
  monkey-patched: the actors, and everything else the app starts, live there. (In a patched
  process the owner is the thread that started the app, whose hub the server runs.)
- reads the request body in the calling thread (up to ``max_body_bytes`` + 1 bytes; a larger
  Content-Length is left unread for the app's 413), so the hub never waits on the server's
  socket;
- hands the call to the owner's hub through the loop's thread-safe callback; a greenlet
  there routes it, runs it and collects the answer's body (streams are iterated there);
- waits for the answer on a real lock (a greenlet of another running hub waits on its own
  hub instead), at most the longest handler deadline plus the mailbox wait plus a margin,
  then answers 504; a bridge that is not running answers 503 at once.

Cost: one thread hop per such request. In a process that is not monkey-patched, a handler's
blocking call (``time.sleep``, a standard-library socket) stops the hub thread, and with it
every request: use gevent's cooperative APIs there, or patch.
"""
from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeVar

import gevent
from gevent import getcurrent, monkey
from gevent.hub import Hub, Waiter, get_hub

from brrt_actors.errors import HTTPError
from brrt_actors.stages.body import read_up_to

if TYPE_CHECKING:
    from gevent._types import _AsyncWatcher, _Loop

    from brrt_actors.actors import Actor
    from brrt_actors.config import Settings
    from brrt_actors.stages import Encoded

__all__ = ["ThreadBridge", "thread_ident"]

logger = logging.getLogger("brrt_actors")

T = TypeVar("T")

#: The calling *thread's* id (not the greenlet's), also in a monkey-patched process.
thread_ident: Final[Callable[[], int]] = monkey.get_original("_thread", "get_ident")
# NOTE: real locks even when patched: the waiting side is a real thread of its own.
_allocate_lock: Final[Callable[[], Any]] = monkey.get_original("_thread", "allocate_lock")

#: What the waiting thread adds to the longest deadline: encoding, validation, the hub's queue.
MARGIN_S: Final = 1.0
#: The wait for an operation without a deadline (``deadline_ms: 0``): bounded all the same.
NO_DEADLINE_WAIT_S: Final = 600.0
# How long `stop` waits for the hub thread to end.
_JOIN_S: Final = 5.0
_RETRY: Final = {"Retry-After": "1"}

_IDLE, _RUNNING, _STOPPED = range(3)
_ANSWERED: Final = object()
_TIMED_OUT: Final = object()

Dispatch = Callable[[dict[str, Any], str, str, str], "Encoded"]


def _nothing() -> None:
    pass


class _Job:
    """One call on its way to the owner's hub and back."""

    __slots__ = ("abandoned", "args", "call", "error", "notify", "result")

    def __init__(self, call: Callable[[_Job], Any], args: tuple[Any, ...]) -> None:
        self.call = call
        self.args = args
        self.result: Any = None
        self.error: BaseException | None = None
        # Wakes the waiting side; set by it before the job is sent.
        self.notify: Callable[[], object] = _nothing
        # Set when the waiting side gave up: the hub stops collecting the answer.
        self.abandoned = False


class ThreadBridge:
    """Hand calls from threads other than the owner's to the owner's hub (see the module).

    Args:
        dispatch: the app's own way of serving a routed call (runs in the owner's hub).
        settings: the app's settings (``max_body_bytes``).
        actors: the app's actors: their deadlines bound the wait.

    Attributes:
        owner: the id of the thread whose hub runs the app (the building thread until
            `start`).
    """

    def __init__(self, dispatch: Dispatch, settings: Settings, actors: Iterable[Actor]) -> None:
        self._dispatch = dispatch
        self._max_body = settings.max_body_bytes
        self._actors = actors
        self.owner = thread_ident()
        self._wait_s = MARGIN_S
        self._loop: _Loop | None = None
        self._thread: threading.Thread | None = None
        self._stop_signal: _AsyncWatcher | None = None
        self._state = _IDLE
        self._lock = _allocate_lock()
        self._pending: set[_Job] = set()

    @property
    def wait_s(self) -> float:
        """How long a handed call is awaited before the caller gets 504."""
        return self._wait_s

    @property
    def threaded(self) -> bool:
        """True when the bridge runs a hub thread of its own."""
        return self._thread is not None

    def start(self) -> int:
        """Choose the owner (a new hub thread when threading is not patched); return its id."""
        self._wait_s = _longest_wait(self._actors)
        if monkey.is_module_patched("threading"):
            self._loop = get_hub().loop
            self.owner = thread_ident()
        else:
            ready = _allocate_lock()
            ready.acquire()
            thread = threading.Thread(target=self._own_hub, args=(ready,), name="brrt-hub",
                                      daemon=True)
            thread.start()
            ready.acquire()
            self._thread = thread
        self._state = _RUNNING
        return self.owner

    def stop(self) -> None:
        """Refuse new calls (503); end the hub thread, if any (waiting calls get 503)."""
        with self._lock:
            self._state = _STOPPED
        thread, signal = self._thread, self._stop_signal
        if thread is None or signal is None:
            return
        signal.send()
        if thread is not threading.current_thread():
            thread.join(_JOIN_S)

    def run(self, function: Callable[..., T], *args: Any) -> T:
        """Call ``function(*args)`` in a greenlet of the owner's hub, wait, return its value.

        In the owner thread, or when the bridge is not running, the call is direct. For the
        app's start and stop, which bound themselves; the wait is not bounded here.
        """
        if self._state != _RUNNING or thread_ident() == self.owner:
            return function(*args)
        job = _Job(_call_with_args, (function, *args))
        self._hand_over(job, None)
        if job.error is not None:
            raise job.error
        result: T = job.result
        return result

    def dispatch(self, environ: dict[str, Any], method: str, path: str,
                 request_id: str) -> Encoded:
        """Serve a call from a thread other than the owner's: buffer, hand over, wait.

        Raises:
            HTTPError: 503 (the bridge is not running), 504 (no answer in `wait_s`), 400
                (the body could not be read), or the app's own error.
        """
        if self._state != _RUNNING:
            raise _refusal(self._state)
        job = _Job(self._serve, (_buffered(environ, self._max_body), method, path, request_id))
        if not self._hand_over(job, self._wait_s):
            job.abandoned = True
            raise HTTPError(504, f"The service did not answer within {self._wait_s:g} s.")
        error = job.error
        if error is None:
            answer: Encoded = job.result
            return answer
        if isinstance(error, Exception):
            raise error
        raise _refusal(_STOPPED)  # the greenlet was killed (GreenletExit): stopping

    # -- the calling thread ----------------------------------------------------------------

    def _hand_over(self, job: _Job, wait_s: float | None) -> bool:
        # Send `job` to the owner's hub and wait for it; False when `wait_s` passed first.
        parent = getcurrent().parent
        if isinstance(parent, Hub):
            # NOTE: a greenlet of a hub this thread runs: wait there, not on a lock that
            # would stop every other greenlet of that hub.
            return self._wait_in_hub(job, parent, wait_s)
        lock = _allocate_lock()
        lock.acquire()
        job.notify = lock.release
        self._send(job)
        try:
            answered: bool = lock.acquire(True, -1 if wait_s is None else wait_s)
        except BaseException:
            job.abandoned = True
            raise
        return answered

    def _wait_in_hub(self, job: _Job, hub: Hub, wait_s: float | None) -> bool:
        waiter: Waiter[object] = Waiter(hub)
        loop = hub.loop
        job.notify = partial(loop.run_callback_threadsafe, waiter.switch, _ANSWERED)
        self._send(job)
        timer = None
        if wait_s is not None:
            timer = loop.timer(wait_s)
            timer.start(waiter.switch, _TIMED_OUT)
        try:
            return waiter.get() is _ANSWERED
        except BaseException:
            job.abandoned = True
            raise
        finally:
            if timer is not None:
                timer.close()

    def _send(self, job: _Job) -> None:
        with self._lock:
            if self._state != _RUNNING or self._loop is None:
                raise _refusal(self._state)
            self._pending.add(job)
            self._loop.run_callback_threadsafe(gevent.spawn, self._run_job, job)

    # -- the owner's hub -------------------------------------------------------------------

    def _run_job(self, job: _Job) -> None:
        try:
            job.result = job.call(job)
        except BaseException as ex:  # NOTE: handed to the waiting thread, which raises it
            job.error = ex
        finally:
            self._pending.discard(job)
            job.notify()

    def _serve(self, job: _Job) -> Encoded:
        environ, method, path, request_id = job.args
        status, headers, body = self._dispatch(environ, method, path, request_id)
        chunks: list[bytes] = []
        try:
            if method != "HEAD":
                for chunk in body:
                    chunks.append(chunk)
                    if job.abandoned:
                        break
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return status, headers, chunks

    def _own_hub(self, ready: Any) -> None:
        # The hub thread: run the loop until `stop`, then answer what is still waiting.
        hub = get_hub()
        self._loop = hub.loop
        self.owner = thread_ident()
        signal = hub.loop.async_()
        self._stop_signal = signal
        waiter: Waiter[object] = Waiter(hub)
        signal.start(waiter.switch, None)  # NOTE: started before anyone can send it
        ready.release()
        try:
            waiter.get()
        except BaseException:
            logger.exception("the app's hub thread failed; its calls get 503")
        finally:
            with self._lock:
                self._state = _STOPPED
                left = list(self._pending)
                self._pending.clear()
            for job in left:
                job.error = _refusal(_STOPPED)
                job.notify()
            signal.close()
            hub.destroy(destroy_loop=True)


def _call_with_args(job: _Job) -> Any:
    function, *args = job.args
    return function(*args)


def _refusal(state: int) -> HTTPError:
    detail = ("The service is not started yet; retry later." if state == _IDLE
              else "The service is shutting down; retry later.")
    return HTTPError(503, detail, headers=_RETRY)


def _longest_wait(actors: Iterable[Actor]) -> float:
    longest = 0.0
    for actor in actors:
        tuning = actor.settings
        deadline_s = tuning.deadline_ms / 1000.0 if tuning.deadline_ms else NO_DEADLINE_WAIT_S
        block_s = tuning.block_timeout_ms / 1000.0 if tuning.policy == "block" else 0.0
        longest = max(longest, deadline_s + block_s)
    return longest + MARGIN_S


def _buffered(environ: dict[str, Any], limit: int) -> dict[str, Any]:
    # A copy of `environ` whose wsgi.input holds the body, read here (see the module).
    try:
        data = _read_body(environ, limit)
    except OSError as ex:
        raise HTTPError(400, "The request body could not be read.") from ex
    buffered = dict(environ)
    buffered["wsgi.input"] = io.BytesIO(data)
    return buffered


def _read_body(environ: dict[str, Any], limit: int) -> bytes:
    raw = environ.get("CONTENT_LENGTH")
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if raw:
        if not (raw.isascii() and raw.isdigit()):
            return b""  # the app answers 400 for it
        length = int(raw)
        if length > limit:
            return b""  # SECURITY: the app answers 413 without a byte read
        return read_up_to(stream, length)
    if environ.get("wsgi.input_terminated"):
        return read_up_to(stream, limit + 1)  # one more: the app sees it is too large
    return b""

