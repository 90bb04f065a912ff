"""Settings from the ini file and the environment, and the generated default application."""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import fields, replace
from pathlib import Path

import pytest

from queuey.config import (
    CassandraSettings,
    ConfigError,
    Limits,
    Settings,
    StorageSettings,
    load_settings,
    token_secrets,
    with_default_application,
)
from queuey.core.limits import LIMIT_RANGES
from queuey.core.quotas import QUOTA_RANGES, Quotas, QuotaSettings

KEY = "f25bfb8fe200475c8a0532a9cbe7651e"


def k(tag: str) -> str:
    """A key long enough to be accepted (16 characters or more), told apart by ``tag``."""
    return f"{tag}-0123456789abcdef"


# The shape of the original Queuey's queuey/tests/test_cassandra.ini (test_memory.ini is the same
# with the memory class names and no host/database).
ORIGINAL_INI = """\
# application configuration
[global]
logger_name = queuey
debug = false

[metlog]
logger = queuey
backend = mozsvc.metrics.MetlogPlugin
sender_class = metlog.senders.dev.DebugCaptureSender

[storage]
backend = queuey.storage.cassandra.CassandraQueueBackend
host = localhost
database = MessageStore

[metadata]
backend = queuey.storage.cassandra.CassandraMetadata
host = localhost
database = MetadataStore

[ipauth]
ipaddrs = 127.0.0.1

[application_keys]
queuey =
    f25bfb8fe200475c8a0532a9cbe7651e

[smtp]
host = localhost
port = 25
sender = queuey@mozilla.com

[cef]
use = true
file = syslog
vendor = mozilla
version = 0
device_version = 1.3
product = queuey

[host:localhost]
storage.sqluri = sqlite:////tmp/test.db

# Paster configuration for Pyramid
[filter:catcherror]
paste.filter_app_factory = mozsvc.middlewares:make_err_mdw

[pipeline:main]
pipeline = catcherror
           pyramidapp

[app:pyramidapp]
use = egg:queuey

pyramid.reload_templates = true
pyramid.default_locale_name = en
mako.directories = queuey:templates
configuration = %(here)s/queuey.conf

[server:main]
use = egg:Paste#http
host = 0.0.0.0
port = 5000

[loggers]
keys = root, queuey

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = console

[logger_queuey]
level = DEBUG
handlers =
qualname = queuey

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)-5.5s [%(name)s][%(threadName)s] %(message)s
"""

ORIGINAL_SECTIONS = (
    "[global]", "[metlog]", "[ipauth]", "[smtp]", "[cef]", "[host:localhost]",
    "[filter:catcherror]", "[pipeline:main]", "[app:pyramidapp]", "[server:main]", "[loggers]",
    "[handlers]", "[formatters]", "[logger_root]", "[logger_queuey]", "[handler_console]",
    "[formatter_generic]",
)  # fmt: skip


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths resolve against the working directory; keep them in the test's directory."""
    monkeypatch.chdir(tmp_path)


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "queuey.ini"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, environ={} if environ is None else environ)


def config_error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, environ)
    return str(caught.value)


# --- [application_keys] ---------------------------------------------------------------------------


def test_application_key_on_the_same_line(tmp_path: Path) -> None:
    settings = load(tmp_path, f"[application_keys]\nqueuey = {KEY}\n")
    assert settings.application_keys == {"queuey": (KEY,)}


def test_application_keys_on_continuation_lines(tmp_path: Path) -> None:
    settings = load(tmp_path, f"[application_keys]\nqueuey =\n    {k('key1')}\n    {k('key2')}\n")
    assert settings.application_keys == {"queuey": (k("key1"), k("key2"))}


def test_several_keys_split_on_whitespace_and_commas_for_several_applications(
    tmp_path: Path,
) -> None:
    text = (
        f"[application_keys]\nqueuey = {k('a1')}, {k('a2')} {k('a3')},{k('a4')}\n    {k('a5')},\n"
        f'Other.App-2 = "{k("b1")}"\ndigits = 0123456789012345\n'
    )
    settings = load(tmp_path, text)
    assert settings.application_keys == {
        "queuey": (k("a1"), k("a2"), k("a3"), k("a4"), k("a5")),
        "Other.App-2": (k("b1"),),
        "digits": ("0123456789012345",),
    }


def test_a_key_shorter_than_16_characters_is_refused(tmp_path: Path) -> None:
    for text in ("[application_keys]\nqueuey = x\n", f"[application_keys]\nq = {KEY} {'k' * 15}"):
        message = config_error(tmp_path, text)
        assert "a key has at least 16" in message, message
    message = config_error(tmp_path, "", {"QUEUEY_APPLICATION_KEYS_Q": "short"})
    assert message.startswith(
        '[application_keys] q (from QUEUEY_APPLICATION_KEYS_Q): key "…" has 5'
    )
    assert load(tmp_path, f"[application_keys]\nq = {'k' * 16}\n").application_keys == {
        "q": ("k" * 16,)
    }


def test_a_key_listed_twice_for_one_application_is_kept_once_with_a_warning(
    tmp_path: Path,
) -> None:
    settings = load(tmp_path, f"[application_keys]\nqueuey = {k('k1')} {k('k2')} {k('k1')}\n")
    assert settings.application_keys == {"queuey": (k("k1"), k("k2"))}
    assert settings.warnings == ("config: [application_keys] queuey lists a key twice",)


def test_a_key_used_by_two_applications_is_an_error(tmp_path: Path) -> None:
    message = config_error(tmp_path, f"[application_keys]\none = {KEY}\ntwo = {k('x')} {KEY}\n")
    assert message.startswith('[application_keys] two: key "f25b…" is already used by')
    assert "application one" in message
    assert KEY not in message  # keys are secrets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bad/name = k", '[application_keys] "bad/name": an application name is 1 to 64'),
        ("queuey =", '[application_keys] queuey = "": needs at least one key'),
        ("queuey = abc;defghij", "[application_keys] queuey: key \"abc;…\" contains ';'"),
    ],
)
def test_invalid_application_keys_are_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert config_error(tmp_path, f"[application_keys]\n{text}\n").startswith(expected)


def test_application_names_longer_than_max_name_length_are_errors(tmp_path: Path) -> None:
    message = config_error(
        tmp_path, "[queuey]\nmax_name_length = 3\n[application_keys]\nabcd = k\n"
    )
    assert message.startswith('[application_keys] "abcd": an application name is 1 to 3')


# --- defaults, files and the environment --------------------------------------------------------


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = load_settings(environ={})
    assert settings == Settings(
        storage=StorageSettings(path=tmp_path / "queuey-data"),
        limits=Limits(),
        warnings=(),
    )
    assert settings.application_keys == {}
    assert settings.config_path is None
    assert settings.storage.backend == "sqlite"
    assert settings.storage.durability == "normal"
    assert settings.storage.cassandra is None
    assert settings.limits.max_message_bytes == 1048576
    assert (settings.sweep_interval, settings.sweep_batch, settings.log_level) == (10, 1000, "info")


def test_the_config_path_comes_from_queuey_config(tmp_path: Path) -> None:
    (tmp_path / "q.ini").write_text("[storage]\nbackend = memory\n", encoding="utf-8")
    settings = load_settings(environ={"QUEUEY_CONFIG": "q.ini"})
    assert settings.storage.backend == "memory"
    assert settings.config_path == tmp_path / "q.ini"
    assert settings.warnings == ()  # QUEUEY_CONFIG is not an unknown setting


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .*nope\.ini \(from QUEUEY_CONFIG\) does"):
        load_settings(environ={"QUEUEY_CONFIG": "nope.ini"})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.ini", environ={})


def test_a_malformed_config_file_is_an_error(tmp_path: Path) -> None:
    assert "no section headers" in config_error(tmp_path, "backend = memory\n")
    assert "already exists" in config_error(tmp_path, "[storage]\npath = a\npath = b\n")


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    environ = {
        "QUEUEY_STORAGE_PATH": "elsewhere",
        "QUEUEY_STORAGE_DURABILITY": "FULL",
        "QUEUEY_QUEUEY_MAX_MESSAGE_BYTES": "2048",
        "QUEUEY_QUEUEY_LOG_LEVEL": "debug",
        "QUEUEY_QUEUEY_SWEEP_INTERVAL": "0.5",
    }
    text = "[storage]\npath = here\n[queuey]\nmax_message_bytes = 10\nlog_level = error\n"
    settings = load(tmp_path, text, environ)
    assert settings.storage.path == tmp_path / "elsewhere"
    assert settings.storage.durability == "full"
    assert settings.limits.max_message_bytes == 2048
    assert settings.log_level == "debug"
    assert settings.sweep_interval == 0.5
    assert settings.warnings == ()


def test_stream_settings_are_limits_of_the_queuey_section(tmp_path: Path) -> None:
    defaults = load(tmp_path, "", {}).limits
    assert (defaults.stream_heartbeat, defaults.stream_buffer, defaults.max_streams) == (
        15, 1_048_576, 20_000,
    )  # fmt: skip
    text = "[queuey]\nstream_heartbeat = 5\nstream_buffer = 65536\n"
    settings = load(tmp_path, text, {"QUEUEY_QUEUEY_MAX_STREAMS": "100"})
    limits = settings.limits
    assert (limits.stream_heartbeat, limits.stream_buffer, limits.max_streams) == (5, 65536, 100)
    assert settings.warnings == ()
    assert "must be an integer from 1 to 3600" in config_error(
        tmp_path, "[queuey]\nstream_heartbeat = 0\n"
    )
    assert "from 1024 to" in config_error(tmp_path, "[queuey]\nstream_buffer = 100\n")


def test_environment_backend_override(tmp_path: Path) -> None:
    settings = load(tmp_path, "[storage]\nbackend = sqlite\n", {"QUEUEY_STORAGE_BACKEND": "memory"})
    assert settings.storage.backend == "memory"


def test_environment_application_keys(tmp_path: Path) -> None:
    environ = {
        "QUEUEY_APPLICATION_KEYS_MYAPP": f"{k('k1')},{k('k2')}",
        "QUEUEY_APPLICATION_KEYS_NEW": k("k3"),
    }
    settings = load(tmp_path, f"[application_keys]\nMyApp = old\nother = {k('k4')}\n", environ)
    assert settings.application_keys == {
        "MyApp": (k("k1"), k("k2")),  # the file's spelling, the environment's keys
        "other": (k("k4"),),
        "new": (k("k3"),),  # names from the environment are lower case
    }


def test_environment_errors_name_the_variable(tmp_path: Path) -> None:
    message = config_error(tmp_path, "", {"QUEUEY_STORAGE_DURABILITY": "fast"})
    assert message == (
        '[storage] durability = "fast" (from QUEUEY_STORAGE_DURABILITY): '
        "must be one of normal, full"
    )


def test_relative_paths_resolve_against_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    settings = load_settings(_write(tmp_path / "etc" / "q.ini", "[storage]\npath = data\n"), {})
    assert settings.storage.path == tmp_path / "data"


def test_here_is_the_config_file_directory_and_other_percents_are_literal(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    text = "[storage]\npath = %(here)s/data\n[application_keys]\nqueuey = 100%key-0123456789ab\n"
    settings = load_settings(_write(tmp_path / "etc" / "q.ini", text), {})
    assert settings.storage.path == tmp_path / "etc" / "data"
    assert settings.application_keys == {"queuey": ("100%key-0123456789ab",)}


def test_values_in_double_quotes_are_unquoted(tmp_path: Path) -> None:
    settings = load(tmp_path, '[storage]\nbackend = "memory"\n[queuey]\nlog_level = "warning"\n')
    assert (settings.storage.backend, settings.log_level) == ("memory", "warning")


def test_default_section_is_not_inherited(tmp_path: Path) -> None:
    settings = load(tmp_path, "[DEFAULT]\nbackend = memory\n[storage]\n")
    assert settings.storage.backend == "sqlite"
    assert settings.warnings == ("config: section [DEFAULT] is not used by Queuey; ignored",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # issue 10: spun at 100 % CPU while idle
        ("sweep_interval = 1e-300", 'sweep_interval = "1e-300": must be a number of seconds from'),
        ("sweep_interval = 3601", "from 0.1 to 3600"),
        # issue 10: one claim on such a queue hung the server for over 25 s
        ("max_partitions = 100000000", "must be an integer from 1 to 255"),
        ("max_message_bytes = 1000000000", "must be an integer from 1 to 67108864"),
        ("request_timeout = 86400", "must be an integer from 1 to 3600"),
        ("max_header_bytes = 100", "must be an integer from 1024 to 1048576"),
        ("sweep_batch = 0", "must be an integer from 1 to 100000"),
    ],
)
def test_numeric_settings_out_of_their_range_are_errors(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in config_error(tmp_path, f"[queuey]\n{text}\n")


def test_every_limit_has_a_range_holding_its_default() -> None:
    defaults = Limits()
    for name in (f.name for f in fields(Limits)):
        low, high = LIMIT_RANGES[name]
        assert low <= getattr(defaults, name) <= high, name
    assert set(LIMIT_RANGES) == {f.name for f in fields(Limits)}


# --- back-ends --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("storage", "metadata", "backend"),
    [
        ("queuey.storage.cassandra.CassandraQueueBackend", "cassandra", "cassandra"),
        ("cassandra", "queuey.storage.cassandra.CassandraMetadata", "cassandra"),
        ("queuey.storage.memory.MemoryQueueBackend", "memory", "memory"),
        ("Memory", "queuey.storage.memory.MemoryMetadata", "memory"),
        ("sqlite", "SQLite", "sqlite"),
    ],
)
def test_backend_names_and_the_originals_class_names(
    tmp_path: Path, storage: str, metadata: str, backend: str
) -> None:
    text = f"[storage]\nbackend = {storage}\n[metadata]\nbackend = {metadata}\n"
    assert load(tmp_path, text).storage.backend == backend


def test_cassandra_settings(tmp_path: Path) -> None:
    text = """\
[storage]
backend = cassandra
host = db1, db2:9043 [::1]:9044 [fe80::1]
username = queuey
password = "secret"
database = Messages
multi_dc = yes
create_schema = false
base_delay = 2
replication_factor = 3
local_dc = dc1
connect_timeout = 1.5
request_timeout = 20
[metadata]
database = Meta
host = db1:9042,db2:9043,[::1]:9044,[fe80::1]
"""
    storage = load(tmp_path, text).storage
    assert storage.cassandra == CassandraSettings(
        hosts=(("db1", 9042), ("db2", 9043), ("::1", 9044), ("fe80::1", 9042)),
        username="queuey",
        password="secret",
        keyspace="Messages",
        multi_dc=True,
        create_schema=False,
        base_delay=2,
        replication_factor=3,
        local_dc="dc1",
        connect_timeout=1.5,
        request_timeout=20.0,
    )
    assert storage.metadata_keyspace == "Meta"


def test_cassandra_defaults(tmp_path: Path) -> None:
    storage = load(tmp_path, "[storage]\nbackend = cassandra\n").storage
    assert storage.cassandra == CassandraSettings()
    assert storage.cassandra.hosts == (("localhost", 9042),)
    assert (storage.cassandra.keyspace, storage.metadata_keyspace) == (
        "MessageStore",
        "MetadataStore",
    )
    assert storage.path == tmp_path / "queuey-data"  # where a generated key is kept


def test_original_ini_loads_with_warnings(tmp_path: Path) -> None:
    settings = load(tmp_path, ORIGINAL_INI)
    assert settings.application_keys == {"queuey": (KEY,)}
    assert settings.storage.backend == "cassandra"
    assert settings.storage.cassandra == CassandraSettings()
    assert settings.storage.metadata_keyspace == "MetadataStore"
    assert len(settings.warnings) == 1
    (warning,) = settings.warnings
    assert "are the original Queuey's" in warning
    assert "ignored" in warning
    for section in ORIGINAL_SECTIONS:
        assert section in warning


def test_original_memory_ini_loads(tmp_path: Path) -> None:
    text = ORIGINAL_INI.replace(
        "backend = queuey.storage.cassandra.CassandraQueueBackend\nhost = localhost\n"
        "database = MessageStore",
        "backend = queuey.storage.memory.MemoryQueueBackend",
    ).replace(
        "backend = queuey.storage.cassandra.CassandraMetadata\nhost = localhost\n"
        "database = MetadataStore",
        "backend = queuey.storage.memory.MemoryMetadata",
    )
    settings = load(tmp_path, text)
    assert settings.storage.backend == "memory"
    assert settings.storage.cassandra is None
    assert settings.application_keys == {"queuey": (KEY,)}
    assert len(settings.warnings) == 1


def test_original_thrift_port_gets_a_warning(tmp_path: Path) -> None:
    settings = load(tmp_path, "[storage]\nbackend = cassandra\nhost = db:9160\n")
    assert settings.storage.cassandra is not None
    assert settings.storage.cassandra.hosts == (("db", 9160),)
    assert len(settings.warnings) == 1
    assert settings.warnings[0].startswith("config: [storage] host: port 9160 is Thrift")


# --- warnings -----------------------------------------------------------------------------------


def test_unknown_sections_keys_and_environment_variables_are_warned_about(tmp_path: Path) -> None:
    environ = {
        "QUEUEY_FOO": "1",
        "QUEUEY_STORAGE_COLOUR": "red",
        "QUEUEY_TEST_CASSANDRA_URL": "cassandra://x",  # the test suite's, not a setting
        "QUEUEY_CONFIGURATION": "x",
        "OTHER": "x",
    }
    text = (
        "[storage]\nflavour = x\n[queuey]\nmax_messages = 5\n[extras]\na = 1\n[smtp]\nport = 25\n"
    )
    settings = load(tmp_path, text, environ)
    assert settings.warnings == (
        "environment: QUEUEY_CONFIGURATION is not a Queuey setting (QUEUEY_<SECTION>_<KEY>); "
        "ignored",
        "environment: QUEUEY_FOO is not a Queuey setting (QUEUEY_<SECTION>_<KEY>); ignored",
        "config: sections [smtp] are the original Queuey's (Paste, Pyramid, metlog, logging) "
        "and are not used by Queuey; ignored",
        "config: section [extras] is not used by Queuey; ignored",
        "config: [storage] flavour is not a Queuey setting; ignored",
        "environment: QUEUEY_STORAGE_COLOUR is not a Queuey setting; ignored",
        "config: [queuey] max_messages is not a Queuey setting; ignored",
    )


def test_keys_of_another_backend_are_warned_about(tmp_path: Path) -> None:
    text = (
        "[storage]\nbackend = memory\npath = x\nhost = db\n[metadata]\npath = x\nbase_delay = 1\n"
    )
    settings = load(tmp_path, text, {"QUEUEY_STORAGE_DURABILITY": "full"})
    assert settings.warnings == (
        "config: [storage] path is a sqlite and cassandra setting, not used with backend memory; "
        "ignored",
        "config: [storage] host is a cassandra setting, not used with backend memory; ignored",
        "environment: QUEUEY_STORAGE_DURABILITY is a sqlite setting, not used with backend "
        "memory; ignored",
        "config: [metadata] path is a sqlite setting, not used with backend memory; ignored",
        "config: [metadata] base_delay is not a Queuey setting; ignored",
    )


def test_metadata_base_delay_is_not_a_setting_with_cassandra(tmp_path: Path) -> None:
    settings = load(tmp_path, "[storage]\nbackend = cassandra\n[metadata]\nbase_delay = 1\n")
    assert settings.warnings == ("config: [metadata] base_delay is not a Queuey setting; ignored",)


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[storage]\ndurability = fast",
            '[storage] durability = "fast": must be one of normal, full',
        ),
        (
            "[storage]\nbackend = redis",
            '[storage] backend = "redis": must be one of sqlite, memory',
        ),
        ("[storage]\npath =", '[storage] path = "": must be a directory'),
        ("[storage]\npath = queuey.ini", '[storage] path = "queuey.ini": '),
        ("[queuey]\nmax_ttl = abc", '[queuey] max_ttl = "abc": must be an integer from 1 to'),
        (
            "[queuey]\nmax_partitions = 0",
            '[queuey] max_partitions = "0": must be an integer from 1 to 255',
        ),
        (
            "[queuey]\nsweep_batch = 1.5",
            '[queuey] sweep_batch = "1.5": must be an integer from 1 to 100000',
        ),
        ("[queuey]\nsweep_interval = 0", '[queuey] sweep_interval = "0": must be a number of'),
        ("[queuey]\nsweep_interval = nan", '[queuey] sweep_interval = "nan": must be a number'),
        ("[queuey]\nlog_level = loud", '[queuey] log_level = "loud": must be one of debug, info'),
        (
            "[queuey]\ndefault_read_limit = 1001",
            '[queuey] default_read_limit = "1001": must not exceed max_read_limit (1000)',
        ),
        (
            "[queuey]\nmax_list_limit = 999",
            '[queuey] max_list_limit = "999": must be at least default_list_limit (1000)',
        ),
        (
            "[queuey]\ndefault_ttl = 10\nmax_ttl = 9",
            '[queuey] default_ttl = "10": must not exceed max_ttl (9)',
        ),
        (
            "[storage]\nbackend = cassandra\nhost = db:99999",
            '[storage] host = "db:99999": must be host or host:port, comma-separated',
        ),
        (
            "[storage]\nbackend = cassandra\nhost = ,",
            '[storage] host = ",": must be host or host:port',
        ),
        (
            "[storage]\nbackend = cassandra\ndatabase = my-store",
            '[storage] database = "my-store": must be a Cassandra keyspace name',
        ),
        (
            "[storage]\nbackend = cassandra\nmulti_dc = maybe",
            '[storage] multi_dc = "maybe": must be true or false',
        ),
        (
            "[storage]\nbackend = cassandra\nbase_delay = -1",
            '[storage] base_delay = "-1": must be an integer from 0 to 3600',
        ),
        (
            "[storage]\nbackend = cassandra\nreplication_factor = 0",
            '[storage] replication_factor = "0": must be an integer from 1 to 99',
        ),
        (
            "[storage]\nbackend = cassandra\nrequest_timeout = -2",
            '[storage] request_timeout = "-2": must be a number of seconds from 0.1 to 600',
        ),
        (
            "[storage]\nbackend = cassandra\nusername = queuey",
            "[storage] username is set but password is not; set both",
        ),
        (
            "[storage]\nbackend = cassandra\npassword = secret",
            "[storage] password is set but username is not; set both",
        ),
        (
            "[metadata]\nbackend = memory",
            '[metadata] backend = "memory": must name the same back-end as [storage] backend '
            "(sqlite)",
        ),
        ("[metadata]\npath = other", '[metadata] path = "other": must be the same directory as'),
        (
            "[storage]\nbackend = cassandra\nhost = a\n[metadata]\nhost = b",
            '[metadata] host = "b": must match [storage] host',
        ),
        (
            "[storage]\nbackend = cassandra\nusername = u\npassword = p\n[metadata]\npassword = q",
            '[metadata] password = "…": must match [storage] password',
        ),
    ],
)
def test_invalid_values_are_errors_naming_section_key_and_value(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert config_error(tmp_path, text + "\n").startswith(expected)


def test_ambiguous_environment_application_is_an_error(tmp_path: Path) -> None:
    text = "[application_keys]\nApp = k1\napp = k2\n"
    message = config_error(tmp_path, text, {"QUEUEY_APPLICATION_KEYS_APP": "k3"})
    assert message == "QUEUEY_APPLICATION_KEYS_APP: matches applications App, app; rename one"


# --- the default application --------------------------------------------------------------------


def test_configured_keys_mean_no_default_application(tmp_path: Path) -> None:
    settings = load(tmp_path, f"[application_keys]\nqueuey = {KEY}\n")
    assert with_default_application(settings) == (settings, None)
    assert not (tmp_path / "queuey-data").exists()


def test_default_application_key_is_generated_stored_and_reused(tmp_path: Path) -> None:
    settings = load_settings(environ={})
    with_key, key = with_default_application(settings)
    assert key is not None and len(key) == 32
    assert with_key.application_keys == {"queuey": (key,)}
    key_file = tmp_path / "queuey-data" / "application_key"
    assert key_file.read_text(encoding="utf-8").strip() == key
    if os.name == "posix":
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    if os.name == "posix":
        assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert with_key.warnings == ()
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["application_key"]
    assert with_default_application(settings) == (with_key, None)  # read back: not shown again


def test_default_application_key_file_readable_by_others_is_warned_about(tmp_path: Path) -> None:
    if os.name != "posix":
        pytest.skip("file modes are POSIX")
    settings = load_settings(environ={})
    (tmp_path / "queuey-data").mkdir()
    key_file = tmp_path / "queuey-data" / "application_key"
    key_file.write_text("k" * 32 + "\n", encoding="utf-8")
    key_file.chmod(0o644)
    with_key, shown = with_default_application(settings)
    assert with_key.application_keys == {"queuey": ("k" * 32,)} and shown is None
    assert with_key.warnings == (
        f"{key_file} can be read by other users; run: chmod 600 {key_file}",
    )


def test_a_corrupt_default_application_key_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "queuey-data").mkdir()
    (tmp_path / "queuey-data" / "application_key").write_text("a b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="does not hold a key; delete it"):
        with_default_application(load_settings(environ={}))


def test_memory_backend_default_application_key_is_fresh_and_not_stored(tmp_path: Path) -> None:
    settings = load_settings(environ={"QUEUEY_STORAGE_BACKEND": "memory"})
    first, second = with_default_application(settings)[1], with_default_application(settings)[1]
    assert first is not None and second is not None and first != second
    assert list(tmp_path.iterdir()) == []


def test_racing_first_starts_agree_on_one_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both starts find no key file and generate a key before either writes it."""
    settings = replace(
        load_settings(environ={}), storage=StorageSettings(path=tmp_path / "fresh" / "dir")
    )
    both_generated = threading.Barrier(2, timeout=10)
    generated = iter(["1" * 32, "2" * 32])
    lock = threading.Lock()

    def token_hex(nbytes: int) -> str:
        with lock:
            key = next(generated)
        both_generated.wait()
        return key

    monkeypatch.setattr("secrets.token_hex", token_hex)
    keys: list[str] = []
    shown: list[str | None] = []

    def start() -> None:
        with_key, generated = with_default_application(settings)
        keys.append(with_key.application_keys["queuey"][0])
        shown.append(generated)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 2 and keys[0] == keys[1]
    assert shown.count(None) == 1 and keys[0] in shown  # only the start that wrote it shows it
    key_file = tmp_path / "fresh" / "dir" / "application_key"
    assert key_file.read_text(encoding="utf-8").strip() == keys[0]
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["application_key"]


def test_without_hard_links_the_key_file_is_created_exclusively(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(source: str, destination: Path) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("os.link", no_link)
    settings = load_settings(environ={})
    key = with_default_application(settings)[1]
    key_file = tmp_path / "queuey-data" / "application_key"
    assert key is not None and key_file.read_text(encoding="utf-8") == key + "\n"
    if os.name == "posix":
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again, shown = with_default_application(settings)
    assert again.application_keys == {"queuey": (key,)} and shown is None


def test_the_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUEY_QUEUEY_MAX_TTL", "300000")
    assert load_settings().limits.max_ttl == 300000


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- browsers: CORS origins, token secrets and issuers ------------------------------------------


def test_cors_origins_global_and_per_application(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        "[queuey]\ncors_origins = https://Console.example, http://localhost:8080/\n"
        "[cors]\nShop = https://shop.example\n",
        {"QUEUEY_CORS_OTHER": "https://other.example:8443"},
    )
    assert settings.cors_origins == ("https://console.example", "http://localhost:8080")
    assert dict(settings.cors) == {
        "Shop": ("https://shop.example",),
        "other": ("https://other.example:8443",),
    }
    assert settings.warnings == ()


@pytest.mark.parametrize("value", ["console.example", "https://a.example/path", "null", "*x"])
def test_a_cors_origin_that_is_not_one_stops_start_up(tmp_path: Path, value: str) -> None:
    message = config_error(tmp_path, f"[queuey]\ncors_origins = {value}\n")
    assert "cors_origins" in message and "is not an origin" in message


def test_a_wildcard_is_global_only(tmp_path: Path) -> None:
    assert "is not an origin" in config_error(tmp_path, "[cors]\nshop = *\n")


def test_token_secrets_are_configured_or_generated_once(tmp_path: Path) -> None:
    configured = load(tmp_path, f"[queuey]\ntoken_secrets = {'a' * 32}, {'b' * 40}\n")
    assert token_secrets(configured) == ("a" * 32, "b" * 40)
    assert "at least 32" in config_error(tmp_path, "[queuey]\ntoken_secrets = short\n")
    data = load(tmp_path, f"[storage]\npath = {tmp_path / 'data'}\n")
    first = token_secrets(data)
    assert len(first[0]) == 64 and token_secrets(data) == first
    assert (tmp_path / "data" / "token_secret").read_text().strip() == first[0]
    memory = load(tmp_path, "[storage]\nbackend = memory\n")
    assert token_secrets(memory) != token_secrets(memory)


def test_token_issuers_name_files(tmp_path: Path) -> None:
    (tmp_path / "shop.pem").write_text("key")
    settings = load(tmp_path, f"[token_issuers]\nshop = {tmp_path / 'shop.pem'}\n")
    assert dict(settings.token_issuers) == {"shop": tmp_path / "shop.pem"}
    assert "is not a file" in config_error(tmp_path, "[token_issuers]\nshop = missing.pem\n")


# --- [quotas] and [application_quotas] ------------------------------------------------------------


def test_quotas_are_off_by_default(tmp_path: Path) -> None:
    settings = load(tmp_path, f"[application_keys]\napp = {k('a')}\n")
    assert settings.quotas == QuotaSettings()
    assert settings.quotas.of("app") == Quotas() and not settings.quotas.of("app").measured


def test_quotas_for_every_application_and_an_applications_own(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        f"[application_keys]\nBig = {k('b')}\nsmall = {k('s')}\nfree = {k('f')}\n"
        "[quotas]\nmax_stored_bytes = 1000\nmax_queues = 10\nmeasure_interval = 2.5\n"
        "[application_quotas]\nBig = max_stored_bytes=5000, post_rate=100 post_burst=500\n"
        "free = max_stored_bytes=0\n",
        {"QUEUEY_QUOTAS_MAX_LONG_POLLS": "7", "QUEUEY_APPLICATION_QUOTAS_SMALL": "max_queues=1"},
    )
    quotas = settings.quotas
    assert quotas.measure_interval == 2.5
    assert quotas.of("small") == Quotas(max_stored_bytes=1000, max_queues=1, max_long_polls=7)
    assert quotas.of("Big") == Quotas(
        max_stored_bytes=5000, max_queues=10, max_long_polls=7, post_rate=100, post_burst=500
    )
    assert quotas.of("free") == Quotas(max_queues=10, max_long_polls=7)  # 0 turns one off
    assert settings.warnings == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[quotas]\nmax_stored_bytes = -1\n", "must be an integer from 0 to 1125899906842624"),
        ("[quotas]\nmax_queues = 100001\n", "must be an integer from 0 to 100000"),
        ("[quotas]\nmeasure_interval = 0.01\n", "must be a number of seconds from 1 to 3600"),
        ("[quotas]\npost_burst = 10\n", "post_burst needs a post_rate"),
        ("[application_quotas]\napp = post_burst=10\n", "post_burst needs a post_rate"),
        ("[application_quotas]\nnobody = max_queues=1\n", "must be a configured application"),
        ("[application_quotas]\napp = max_queues\n", "is not <quota>=<value>"),
        ("[application_quotas]\napp = max_cpus=1\n", "is not <quota>=<value>"),
        ("[application_quotas]\napp = max_queues=x\n", "max_queues must be an integer from 0"),
        ("[application_quotas]\napp = max_streams=1000001\n", "from 0 to 1000000"),
        ("[application_quotas]\napp = ,\n", "needs at least one <quota>=<value>"),
    ],
)
def test_bad_quotas_are_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in config_error(tmp_path, f"[application_keys]\napp = {k('a')}\n{text}")


def test_a_measure_interval_without_stored_quotas_is_warned_about(tmp_path: Path) -> None:
    settings = load(tmp_path, "[quotas]\nmeasure_interval = 5\nmax_queues = 3\n")
    assert any("measure_interval" in warning for warning in settings.warnings)


def test_every_quota_has_a_range_holding_off() -> None:
    assert set(QUOTA_RANGES) == {f.name for f in fields(Quotas)}
    assert all(low == 0 < high for low, high in QUOTA_RANGES.values())
