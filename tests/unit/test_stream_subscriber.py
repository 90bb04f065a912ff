"""A stream's subscriber with a direct writer: frames go out at once when nothing is before
them, are queued in order when the writer cannot take them, and the buffer bounds both."""

from __future__ import annotations

from queuey.core.models import Claim, Message
from queuey.streams import Chunk, End, Subscriber


class Bytes:
    joinable = True

    def message(self, message: Message) -> Chunk:
        return message.id.encode()

    def claim(self, claim: Claim) -> Chunk:
        return claim.message.id.encode()


class Sink:
    """A connection's writer that takes frames while ``open``."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.open = True

    def __call__(self, frames: list[bytes]) -> bool:
        if self.open:
            self.written += frames
        return self.open


def subscriber(buffer: int = 100) -> tuple[Subscriber, Sink]:
    sink = Sink()
    sub = Subscriber(Bytes(), None, buffer)
    sub.attach(sink, b": beat\n\n")
    return sub, sink


async def test_frames_go_out_at_once_and_nothing_is_queued() -> None:
    sub, sink = subscriber()
    drained: list[bool] = []
    sub.on_drain = lambda: drained.append(True)
    sub.push([b"a", b"b"], 2)
    sub.push([b"c"], 1)
    assert sink.written == [b"a", b"b", b"c"]
    assert sub.queued == 0 and sub.queued_bytes == 0
    assert drained == [True, True]  # round-robin credit comes back as frames go out


async def test_frames_the_writer_refuses_are_queued_and_later_ones_stay_behind_them() -> None:
    sub, sink = subscriber()
    sink.open = False  # the client's buffer is full
    sub.push([b"a"], 1)
    sink.open = True  # room again, but "a" waits for the stream's task: "b" goes behind it
    sub.push([b"b"], 1)
    assert sink.written == []
    assert await sub.take() == [b"a", b"b"]
    sub.push([b"c"], 1)  # "a" and "b" are being written: "c" waits for them
    assert sink.written == []
    assert await sub.take() == [b"c"]  # the task came back: what it took before is written
    sub.push([b"d"], 1)
    assert await sub.take() == [b"d"]
    sub.push([b"e"], 1)
    assert sink.written == []
    sub.end(End.DELETED)  # what was queued before the end still goes out
    assert await sub.take() == [b"e"]
    assert await sub.take() == []
    sub.push([b"f"], 1)  # nothing after it
    assert await sub.take() == [] and sink.written == []


async def test_frames_queued_for_a_client_that_left_are_dropped() -> None:
    sub, sink = subscriber()
    sink.open = False
    sub.push([b"a"], 1)
    sub.end(End.GONE)
    assert await sub.take() == [] and sub.queued_bytes == 0


async def test_the_buffer_bounds_frames_written_at_once_too() -> None:
    sub, sink = subscriber(buffer=10)
    sub.push([b"x" * 10], 10)
    assert sub.ended is None and sink.written == [b"x" * 10]
    sub.push([b"y" * 11], 11)
    assert sub.ended is End.OVERFLOW
    assert sink.written == [b"x" * 10]


async def test_a_heartbeat_goes_out_at_once_unless_frames_wait() -> None:
    sub, sink = subscriber()
    sub.heartbeat()
    assert sink.written == [b": beat\n\n"]
    sink.open = False
    sub.push([b"a"], 1)
    sub.heartbeat()  # not before "a", which the stream's task writes instead
    assert sink.written == [b": beat\n\n"]
    assert await sub.take() == [b"a"]
