"""The command line's logging: runtime logs as text or JSON lines, the access log as it is.

``BRRTR_LOG_FORMAT=json`` (``--log-format json``) writes every runtime log record as one JSON
object per line (``level``, ``logger``, ``message``, ``time``, ``exc_info`` and any
``extra`` fields; python-json-logger's formatter), ``text`` (the default) as
``<time> <level> <logger>: <message>``. The access log (`brrt_actors.stages.access_log`) is
already one JSON document per line: its logger writes its lines unchanged to stderr, in
either format, and not again through the root logger.
"""
from __future__ import annotations

import logging
from typing import Final

from brrt_actors.errors import ConfigError

__all__ = ["LOG_FORMATS", "LOG_FORMAT_ENV", "configure_logging"]

LOG_FORMAT_ENV: Final = "BRRTR_LOG_FORMAT"
#: The formats of the runtime's log records (the default first).
LOG_FORMATS: Final = ("text", "json")
_TEXT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _formatter(log_format: str) -> logging.Formatter:
    if log_format == "text":
        return logging.Formatter(_TEXT)
    from pythonjsonlogger.json import JsonFormatter  # NOTE: only for the json format

    return JsonFormatter("%(levelname)s %(name)s %(message)s",
                         rename_fields={"levelname": "level", "name": "logger"},
                         timestamp="time", json_ensure_ascii=False)


def configure_logging(level: str, log_format: str | None) -> None:
    """Set up the root logger at `level` in `log_format`, and the access log's own output.

    Raises:
        ConfigError: `log_format` is not one of `LOG_FORMATS`, or `level` not a level name.
    """
    chosen = (log_format or LOG_FORMATS[0]).strip().lower()
    if chosen not in LOG_FORMATS:
        raise ConfigError([(LOG_FORMAT_ENV, f"{log_format!r} is not valid; expected one of "
                                            + ", ".join(LOG_FORMATS))])
    if not isinstance(logging.getLevelName(level.upper()), int):
        raise ConfigError([("BRRTR_LOG_LEVEL", f"{level!r} is not a log level (DEBUG, INFO, "
                                               "WARNING, ERROR)")])
    handler = logging.StreamHandler()
    handler.setFormatter(_formatter(chosen))
    logging.basicConfig(level=level.upper(), handlers=[handler])

    from brrt_actors.stages.access_log import ACCESS_LOGGER

    access = logging.getLogger(ACCESS_LOGGER)
    if not access.handlers:
        lines = logging.StreamHandler()
        lines.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(lines)
        access.propagate = False
    # NOTE: turned on by BRRTR_ACCESS_LOG, the access log is written whatever --log-level says.
    access.setLevel(logging.INFO)
