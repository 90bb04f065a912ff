"""Streams (api.md "Streams (push)"): broadcast and round-robin delivery to open requests."""

from queuey.streams.hub import StreamRequest, Streams
from queuey.streams.subscriber import Chunk, End, Framing, Subscriber

__all__ = ["Chunk", "End", "Framing", "StreamRequest", "Streams", "Subscriber"]
