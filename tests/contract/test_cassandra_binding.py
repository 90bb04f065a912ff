"""Statement binding without the driver's per-value descriptors: the same bytes the driver's
own ``bind`` would send, for every kind of value Queuey binds."""

from __future__ import annotations

from typing import Any

import pytest
from cassandra.query import BatchStatement, BatchType

from queuey.storage.cassandra import CassandraStorage
from queuey.storage.cassandra.session import Statements
from tests import cassandra as node

store = pytest.fixture(node.fresh_store, name="store")

ROW = (7, 3, 1, 139_000_000_000_000_000, 1_234_567_890_123, 1_795_508_311_000, "text/plain")
INSERT = (*ROW, "bödy ✓", 0, 2, 0, 0, 3600)


@pytest.mark.parametrize(
    ("key", "params"),
    [
        ("m_insert", INSERT),
        ("m_insert", (*ROW, None, 0, 2, 0, 0, 3600)),  # a null is sent as null
        ("m_keys", (7, 3, [(1, 139_000_000_000_000_000, 5), (2, 1, 1)])),  # IN of tuples
        ("b_insert", (7, 3)),
    ],
)
async def test_values_are_the_bytes_the_driver_binds(
    store: CassandraStorage, key: str, params: tuple[Any, ...]
) -> None:
    binder = store.session._prepared[key]
    assert binder.values(params) == list(binder.statement.bind(params).values)
    bound = binder.bind(params)
    driver = binder.statement.bind(params)
    assert (bound.values, bound.routing_key, bound.keyspace) == (
        driver.values,
        driver.routing_key,
        driver.keyspace,
    )
    assert bound.is_idempotent == driver.is_idempotent


async def test_a_batch_holds_what_the_drivers_add_would(store: CassandraStorage) -> None:
    session = store.session
    statements: Statements = [("b_insert", (7, 3)), ("m_insert", INSERT), ("m_insert", INSERT)]
    built = session.build_batch(statements, "ONE", logged=False)
    expected = BatchStatement(batch_type=BatchType.UNLOGGED)
    for key, params in statements:
        expected.add(session._prepared[key].statement, params)
    assert built._statements_and_parameters == expected._statements_and_parameters
    assert (built.routing_key, built.keyspace) == (expected.routing_key, expected.keyspace)


@pytest.mark.parametrize("body", [12, b"bytes"])
async def test_a_value_of_the_wrong_type_is_refused_as_the_driver_does(
    store: CassandraStorage, body: object
) -> None:
    binder = store.session._prepared["m_insert"]
    wrong = (*ROW, body, 0, 2, 0, 0, 3600)
    with pytest.raises(Exception) as by_driver:
        binder.statement.bind(wrong)
    for bind in (binder.values, binder.bind):
        with pytest.raises(type(by_driver.value)) as ours:
            bind(wrong)
        assert str(ours.value) == str(by_driver.value)
