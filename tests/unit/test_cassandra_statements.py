"""The driver may send an idempotent statement again to another node: never a conditional one."""

from __future__ import annotations

from queuey.storage.cassandra import _NOT_IDEMPOTENT, _statements


def test_every_conditional_statement_is_marked_not_idempotent() -> None:
    statements = _statements('"meta"', '"msgs"')
    conditional = {key for key, cql in statements.items() if " IF " in cql}
    assert conditional and conditional <= _NOT_IDEMPOTENT
