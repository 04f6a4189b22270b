"""Starting a server under test on loopback, for the benchmarks that drive one over sockets."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def can_pin() -> bool:
    """Tell whether the server and its load can be pinned to CPUs 0 and 1 (taskset)."""
    return shutil.which("taskset") is not None and {0, 1} <= os.sched_getaffinity(0)


def pinned(cpus: int | Sequence[int], command: list[str], pin: bool) -> list[str]:
    """Return `command` run on CPU(s) `cpus` when `pin`, else as it is."""
    listed = ",".join(map(str, [cpus] if isinstance(cpus, int) else cpus))
    return ["taskset", "-c", listed, *command] if pin else command


def wait_healthy(url: str, server: subprocess.Popen[bytes]) -> None:
    """Wait until `url` answers 200; raise RuntimeError when the server exits or is late."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer {url} within {START_TIMEOUT_S:.0f} s")


def stop(server: subprocess.Popen[bytes]) -> list[str]:
    """Stop the server with SIGTERM (killed after STOP_TIMEOUT_S); return what went wrong.

    Its exit code is then in ``server.returncode``; judging it is the caller's part.
    """
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        return [f"the server did not stop within {STOP_TIMEOUT_S:.0f} s of SIGTERM"]
    return []
