"""The actor mailbox on real gevent: order, bounds, waiting takers and givers, kills."""
from __future__ import annotations

from typing import Any

import gevent
import pytest
from gevent.hub import get_hub
from gevent.monkey import get_original

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


# -- a giver handed the room as it gives up passes the room on (issue 9, defect 5) ----------

def _two_givers(box: BoundedMailbox[str], first_timeout: float) -> tuple[Any, Any]:
    box.put_nowait("queued")
    first = gevent.spawn(box.put, "first", True, first_timeout)
    second = gevent.spawn(box.put, "second", True, 30.0)
    gevent.sleep(0)  # both wait for room, `first` in front
    assert box.qsize() == 1 and not first.ready() and not second.ready()
    return first, second


def test_a_giver_timing_out_as_it_is_handed_the_room_passes_it_on() -> None:
    box: BoundedMailbox[str] = BoundedMailbox(1)
    first, second = _two_givers(box, first_timeout=0.05)
    # A taker makes room from a loop timer due just before `first`'s timeout: blocking the
    # whole thread past both makes them fire in the same loop iteration, in the order of
    # their time-outs (libev's rule), so `first` times out with the room already handed to it.
    taker = get_hub().loop.timer(0.01)
    taker.start(box.get_nowait)
    get_original("time", "sleep")(0.1)
    with pytest.raises(Full):
        first.get(timeout=1)
    second.get(timeout=1)  # without the fix: waits its whole 30 s, the mailbox empty
    assert box.get_nowait() == "second"
    taker.close()


def test_a_giver_killed_as_it_is_handed_the_room_passes_it_on() -> None:
    box: BoundedMailbox[str] = BoundedMailbox(1)
    first, second = _two_givers(box, first_timeout=30.0)
    # Loop callbacks run in order: the kill reaches `first` before the room handed to it.
    first.kill(block=False)
    assert box.get_nowait() == "queued"
    first.join(timeout=1)
    assert first.dead and isinstance(first.value, gevent.GreenletExit)
    second.get(timeout=1)
    assert box.get_nowait() == "second"


def test_a_giver_waits_its_whole_timeout_after_a_busy_loop_iteration() -> None:
    # The loop reads its clock once per iteration: a put in a long iteration (a burst of
    # requests) must not find its timeout already spent (issue 9, defect 9).
    box: BoundedMailbox[str] = BoundedMailbox(1)
    box.put_nowait("queued")

    def give() -> None:
        gevent.sleep(0.001)  # resumed by a loop timer, as a connection is by its socket
        get_original("time", "sleep")(0.3)  # the iteration is busy for 300 ms
        taker = gevent.spawn(gevent.sleep, 0.01)  # makes room 10 ms from now
        taker.link(lambda _: box.get_nowait())
        box.put("item", timeout=0.25)  # without the fix: Full at once

    gevent.spawn(give).get(timeout=5)
    assert box.get_nowait() == "item"
