"""Binding values to prepared statements at the cost of serializing them.

The driver's ``PreparedStatement.bind`` looks up each column's encryption policy and builds a
descriptor per value before serializing it: on a batch of 100 messages (13 values each) that
is most of what a post costs in this process. Queuey never encrypts columns and always passes
every value, so :class:`Binder` keeps one packing function per column and serializes the
values directly: the integer and text columns (all of a message row's) with ``struct`` and
``str.encode`` themselves, the same bytes as the driver's types make, without a call through
them per value. Anything else (fewer values than columns, which the driver pads with UNSET; a
null, or a value of the wrong type, which the driver refuses with its own message) goes
through the driver's own ``bind``."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

Pack = Callable[[Any], bytes]


def _text(value: str) -> bytes:
    return value.encode("utf-8")  # AttributeError for anything but text: the driver's bind


_LONG = struct.Struct(">q").pack
_INT = struct.Struct(">i").pack


def packer(kind: Any, protocol: int) -> Pack:
    """The function that serializes a value of the driver's column type ``kind``."""
    from cassandra import cqltypes

    own = {
        cqltypes.LongType: _LONG,
        cqltypes.CounterColumnType: _LONG,
        cqltypes.Int32Type: _INT,
        cqltypes.UTF8Type: _text,
        cqltypes.VarcharType: _text,  # what `text` columns are
    }.get(kind)
    if own is not None:
        return own
    serialize = kind.serialize

    def pack(value: Any) -> bytes:
        if value is None:
            raise TypeError("null")  # the driver's bind sends it as null
        return serialize(value, protocol)  # type: ignore[no-any-return]

    return pack


class Binder:
    """One prepared statement and the functions its values are serialized with."""

    __slots__ = ("statement", "query_id", "_packs", "_bound_class")

    def __init__(self, statement: Any, bound_class: Any) -> None:
        self.statement = statement
        self.query_id = statement.query_id
        protocol = statement.protocol_version
        self._packs = tuple(
            packer(column.type, protocol) for column in statement.column_metadata or ()
        )
        self._bound_class = bound_class
        if statement.column_encryption_policy is not None:
            self._packs = ()  # every bind through the driver, which encrypts

    def values(self, params: Sequence[Any]) -> list[bytes | None]:
        """``params`` serialized as the statement's columns want them."""
        packs = self._packs
        if len(params) != len(packs) or not packs:
            return list(self.statement.bind(params).values)
        try:
            return [pack(value) for pack, value in zip(packs, params)]  # noqa: B905 (same length)
        except Exception:  # a null, or refused as the driver refuses it, with its message
            return list(self.statement.bind(params).values)

    def bind(self, params: Sequence[Any]) -> Any:
        """A bound statement of ``params`` (routing key and keyspace as the driver sets them)."""
        if len(params) != len(self._packs) or not self._packs:
            return self.statement.bind(params)
        bound = self._bound_class(self.statement)
        bound.raw_values = params
        bound.values = self.values(params)
        return bound
