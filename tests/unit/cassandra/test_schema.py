"""The driver may send an idempotent statement again to another node: never a conditional one."""

from __future__ import annotations

from queuey.storage.cassandra.schema import NOT_IDEMPOTENT, statements


def test_every_conditional_statement_is_marked_not_idempotent() -> None:
    prepared = statements('"meta"', '"msgs"')
    conditional = {key for key, cql in prepared.items() if " IF " in cql}
    assert conditional and conditional <= NOT_IDEMPOTENT
