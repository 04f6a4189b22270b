"""The process's open files limit (RLIMIT_NOFILE), sized for the connection pool at start.

Each client connection holds one file descriptor. Linux's usual soft limit (1024) is far
below the default pool (10,000 connections): past it, accepting fails with EMFILE while the
pool still has room. The soft limit may be raised up to the hard limit without privileges.
"""
from __future__ import annotations

import logging
import resource

__all__ = ["FD_HEADROOM", "ensure_fd_limit"]

_log = logging.getLogger("brrt_actors.server")

#: Descriptors kept for everything but client connections: the listener, the event loop,
#: log files, outbound sockets of handlers and security providers (JWKS, OIDC), files.
FD_HEADROOM = 256


def ensure_fd_limit(max_connections: int, headroom: int = FD_HEADROOM) -> int:
    """Raise the soft open files limit so that `max_connections` sockets fit; return it.

    The soft limit goes up to ``max_connections + headroom``, at most to the hard limit.
    When even that is too low, a warning names the setting to lower.
    """
    needed = max_connections + headroom
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as ex:  # NOTE: macOS refuses more than OPEN_MAX
            _log.warning("could not raise the open files limit (RLIMIT_NOFILE) from %d to "
                         "%d: %s", soft, target, ex)
        else:
            _log.info("raised the open files limit (RLIMIT_NOFILE) from %d to %d for %d "
                      "connections", soft, target, max_connections)
            soft = target
    if soft < needed:
        _log.warning(
            "the open files limit (RLIMIT_NOFILE) is %d (hard limit %d), below the %d "
            "connections of BRRTR_MAX_CONNECTIONS plus %d for the rest of the process: "
            "accepting fails past it; lower BRRTR_MAX_CONNECTIONS or "
            "raise the hard limit (ulimit -Hn, systemd LimitNOFILE=, docker --ulimit nofile=)",
            soft, hard, max_connections, headroom)
    return soft
