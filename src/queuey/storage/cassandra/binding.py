"""Binding values to prepared statements at the cost of serializing them.

The driver's ``PreparedStatement.bind`` looks up each column's encryption policy and builds a
descriptor per value before serializing it: on a batch of 100 messages (13 values each) that
is most of what a post costs in this process. Queuey never encrypts columns and always passes
every value, so :class:`Binder` keeps each statement's column types and serializes the values
directly; anything else (fewer values than columns, which the driver pads with UNSET) goes
through the driver's own ``bind``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Binder:
    """One prepared statement and the column types its values are serialized with."""

    __slots__ = ("statement", "query_id", "_types", "_protocol", "_bound_class")

    def __init__(self, statement: Any, bound_class: Any) -> None:
        self.statement = statement
        self.query_id = statement.query_id
        self._types = tuple(column.type for column in statement.column_metadata or ())
        self._protocol = statement.protocol_version
        self._bound_class = bound_class
        if statement.column_encryption_policy is not None:
            self._types = ()  # every bind through the driver, which encrypts

    def values(self, params: Sequence[Any]) -> list[bytes | None]:
        """``params`` serialized as the statement's columns want them."""
        types = self._types
        if len(params) != len(types) or not types:
            return list(self.statement.bind(params).values)
        protocol = self._protocol
        try:
            return [
                None if value is None else kind.serialize(value, protocol)
                for value, kind in zip(params, types, strict=True)
            ]
        except Exception:  # refused as the driver refuses it, with its message
            return list(self.statement.bind(params).values)

    def bind(self, params: Sequence[Any]) -> Any:
        """A bound statement of ``params`` (routing key and keyspace as the driver sets them)."""
        if len(params) != len(self._types) or not self._types:
            return self.statement.bind(params)
        bound = self._bound_class(self.statement)
        bound.raw_values = params
        bound.values = self.values(params)
        return bound
