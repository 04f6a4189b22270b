"""The engine's Date lines: rebuilt once a second by a timer of the hub, not per answer."""
from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import gevent

from brrt_actors.engine import wire


def _date_of(line: bytes) -> float:
    assert line.startswith(b"Date: ") and line.endswith(b"\r\n")
    return parsedate_to_datetime(line[6:-2].decode("ascii")).timestamp()


def test_the_three_forms_agree() -> None:
    dated, date_only, undated = wire.date_lines()
    assert dated == b"Server: brrt_actors\r\n" + date_only
    assert undated == b""
    assert abs(_date_of(date_only) - time.time()) < 2
    assert wire.date_block() == dated and wire.date_line() == date_only and not wire.no_date()


def test_the_date_moves_on_once_the_hub_runs() -> None:
    first = _date_of(wire.date_lines()[wire.DATE_ONLY])
    gevent.sleep(1.2)  # NOTE: the hub runs the timer that ends the second's lines
    later = _date_of(wire.date_lines()[wire.DATE_ONLY])
    assert later >= first + 1
    assert abs(later - time.time()) < 2
