"""The actor mailbox on real gevent: order, bounds, waiting takers and givers, kills."""
from __future__ import annotations

from typing import Any

import gevent
import pytest

from brrt_actors.mailbox import BoundedMailbox, Empty, Full


def test_items_come_out_in_order_and_the_bound_holds() -> None:
    box: BoundedMailbox[int] = BoundedMailbox(2)
    box.put_nowait(1)
    box.put_nowait(2)
    with pytest.raises(Full):
        box.put_nowait(3)
    assert box.qsize() == 2
    assert [box.get_nowait(), box.get()] == [1, 2]
    with pytest.raises(Empty):
        box.get_nowait()


def test_a_waiting_taker_gets_the_next_item() -> None:
    box: BoundedMailbox[str] = BoundedMailbox(1)
    taker = gevent.spawn(box.get)
    gevent.sleep(0)  # the taker now waits
    box.put_nowait("hello")
    assert taker.get(timeout=1) == "hello"
    assert box.qsize() == 0


def test_a_giver_waits_for_room_then_gives_up() -> None:
    box: BoundedMailbox[str] = BoundedMailbox(1)
    box.put_nowait("first")
    giver = gevent.spawn(box.put, "second", True, 5.0)
    gevent.sleep(0.01)
    assert not giver.ready()  # no room yet
    assert box.get() == "first"  # makes room: the giver goes on
    giver.get(timeout=1)
    assert box.get_nowait() == "second"
    box.put_nowait("third")
    with pytest.raises(Full):
        box.put("fourth", timeout=0.01)
    with pytest.raises(Full):
        box.put("fourth", block=False)
    assert box.qsize() == 1


def test_an_item_meant_for_a_killed_taker_goes_to_the_next() -> None:
    box: BoundedMailbox[str] = BoundedMailbox(4)
    got: list[Any] = []
    first = gevent.spawn(lambda: got.append(("first", box.get())))
    second = gevent.spawn(lambda: got.append(("second", box.get())))
    gevent.sleep(0)  # both wait, first in line
    first.kill(block=False)  # killed before the wake-up below reaches it
    box.put_nowait("item")
    second.join(timeout=1)
    assert got == [("second", "item")]
    assert first.dead and box.qsize() == 0


def test_the_bound_is_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BoundedMailbox(0)
