"""The settings load without the driver: the config imports them for every back-end."""

from __future__ import annotations

import subprocess
import sys

# Imports the config with ``cassandra`` (the driver) unimportable, then lists what was loaded.
_WITHOUT_DRIVER = """
import sys

class NoDriver:
    def find_spec(self, name, path=None, target=None):
        if name == "cassandra" or name.startswith("cassandra."):
            raise ImportError(name)

sys.meta_path.insert(0, NoDriver())
import queuey.config
from queuey.storage.cassandra.settings import CassandraSettings

assert queuey.config.CassandraSettings is CassandraSettings
print(" ".join(sorted(m for m in sys.modules if m.startswith("queuey.storage"))))
"""


def test_the_config_loads_the_cassandra_settings_without_the_driver_or_the_store() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", _WITHOUT_DRIVER], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == [
        "queuey.storage",
        "queuey.storage.cassandra",
        "queuey.storage.cassandra.settings",
    ]
