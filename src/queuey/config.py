"""Settings: an ini file, then ``QUEUEY_<SECTION>_<KEY>`` environment variables.

The file is read as ini with these sections (every key is optional and has a default):

- ``[application_keys]``: ``<application> = <key> [<key> ...]``. Keys go on the same line or on
  continuation lines, separated by whitespace or commas. Keys are kept as strings, exactly, and
  are printable ASCII without spaces, commas, quotes or ``;``. Application names keep their case.
- ``[storage]``: ``backend`` (``sqlite``, ``memory``, ``cassandra``, or the original Queuey's
  ``queuey.storage.*`` class names), ``path`` and ``durability`` for SQLite, the original's
  Cassandra keys (``host``, ``username``, ``password``, ``database``, ``multi_dc``,
  ``create_schema``, ``base_delay``) plus ``replication_factor``, ``replication`` (per data
  centre factors, ``dc1:3,dc2:3``), ``local_dc``,
  ``connect_timeout`` and ``request_timeout``. ``path`` is also where a generated application key
  is kept (see :func:`with_default_application`), so it is a Cassandra key too.
- ``[metadata]``: Queuey keeps queue metadata in the same store as the messages, so this section
  may only repeat ``[storage]`` (same back-end, same SQLite path, same Cassandra cluster); its
  ``database`` names the Cassandra metadata keyspace.
- ``[queuey]``: limits (streams' heartbeat, buffer and count among them), the expiry sweeper,
  the log level, the access log (``access_log``: ``off``, ``text`` or ``json``), metrics
  (``metrics`` on/off, ``metrics_token``), ``cors_origins`` (a comma list of origins such as
  ``https://app.example``, or ``*``) and ``token_secrets`` (a comma list of secrets; tokens are
  signed with the first and accepted with any, so a new one goes first; when none is set one is
  generated into ``<storage path>/token_secret``, see :func:`token_secrets`).
- ``[cors]``: ``<application> = <origins>``: origins allowed on that application's URLs only.
- ``[token_issuers]``: ``<application> = <file>``: a PEM public key or a JWKS file whose keys
  verify tokens (RS256, ES256) of that application's own identity service.
- ``[quotas]``: per-application quotas every application gets (``max_stored_bytes``,
  ``max_stored_messages``, ``max_queues``, ``max_long_polls``, ``max_streams``, ``post_rate``,
  ``post_burst``; 0, the default, is off) and ``measure_interval``, the seconds between two
  measurements of each application's stored messages and bytes (see
  :mod:`queuey.service.quotas`).
- ``[application_quotas]``: ``<application> = <quota>=<value> [<quota>=<value> ...]`` (separated
  by whitespace or commas): that application's own quotas, replacing ``[quotas]``' ones it
  names (0 turns one off).
- ``[restmq]`` and ``[aweq]``: the compatibility front ends (api.md Part 4), off unless
  ``application`` names the application they serve; ``hosts_allow`` lists address prefixes
  (or ``all``) whose requests need no credentials; AweQ's ``queue`` names its one queue.

A relative ``path`` is resolved against the current working directory when the settings are
loaded; write ``%(here)s/data`` for a directory next to the config file. ``%(here)s`` (the config
file's directory) is the only substitution: any other ``%`` is literal. A value in double quotes is
unquoted. ``[DEFAULT]`` is an ordinary (unused) section.

The environment wins over the file: ``QUEUEY_STORAGE_BACKEND``, ``QUEUEY_QUEUEY_MAX_TTL``, and so
on. ``QUEUEY_APPLICATION_KEYS_<APP>`` sets an application's keys; the name is the lower-cased
suffix, and replaces the keys of a file application whose name differs only in case.
``QUEUEY_CONFIG`` names the config file and ``QUEUEY_TEST_*`` belong to the test suite; neither is
a setting.

Anything Queuey does not use (sections, keys, environment variables) is reported in
``Settings.warnings``; anything it cannot use raises :class:`ConfigError`.
"""

from __future__ import annotations

import configparser
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from queuey.application_key import (
    MIN_KEY_LENGTH,
    KeyFileError,
    bad_character,
    new_key,
    stored_key,
)
from queuey.core.limits import LIMIT_RANGES, Limits
from queuey.core.quotas import (
    MEASURE_INTERVAL_RANGE,
    QUOTA_NAMES,
    QUOTA_RANGES,
    Quotas,
    QuotaSettings,
)
from queuey.original_config import is_original_section, original_sections_warning
from queuey.storage import ALIASES, BACKENDS, backend_named
from queuey.storage.cassandra.settings import CassandraSettings

__all__ = [
    "CassandraSettings",
    "ConfigError",
    "FrontEndSettings",
    "Limits",
    "QuotaSettings",
    "Quotas",
    "Settings",
    "StorageSettings",
    "load_settings",
    "with_default_application",
]

T = TypeVar("T")

DEFAULT_APPLICATION = "queuey"
KEY_FILE_NAME = "application_key"
DEFAULT_PATH = "./queuey-data"
CASSANDRA_PORT = 9042
LOG_LEVELS = ("debug", "info", "warning", "error")
ACCESS_LOG_FORMATS = ("off", "text", "json")
# What the other numeric settings may be, inclusive (the limits': LIMIT_RANGES).
SWEEP_INTERVAL_RANGE = (0.1, 3600.0)  # seconds between expiry sweeps
SWEEP_BATCH_RANGE = (1, 100_000)  # messages removed per sweep transaction
CASSANDRA_TIMEOUT_RANGE = (0.1, 600.0)  # connect_timeout, request_timeout

_SECTIONS = (
    "application_keys", "storage", "metadata", "queuey", "cors", "token_issuers", "restmq", "aweq",
    "quotas", "application_quotas",
)  # fmt: skip
# Sections keyed by application name, whose keys keep their case.
_APPLICATION_SECTIONS = ("application_keys", "cors", "token_issuers", "application_quotas")
_BURST_ALONE = "post_burst needs a post_rate"
_QUOTA_ITEM = re.compile(r"([a-z_]+)=([^\s,=]*)")
TOKEN_SECRET_FILE_NAME = "token_secret"
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s,?#*]+")
DEFAULT_AWEQ_QUEUE = "aweq"
_CASSANDRA_KEYS = (
    "host", "username", "password", "database", "multi_dc", "create_schema", "base_delay",
    "replication_factor", "replication", "local_dc", "connect_timeout", "request_timeout",
)  # fmt: skip
_STORAGE_KEYS = {
    "sqlite": ("path", "durability"),
    "memory": (),
    "cassandra": ("path", *_CASSANDRA_KEYS),
}
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_KEYSPACE = re.compile(r"[A-Za-z0-9_]{1,48}")
_KEY_SEPARATORS = re.compile(r'[\s,"]+')
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


class ConfigError(Exception):
    """The settings cannot be used; the message names the setting, its value and what is allowed."""


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """Where messages and queue metadata live; ``path`` is absolute once loaded."""

    backend: str = "sqlite"
    path: Path = Path(DEFAULT_PATH)
    durability: str = "normal"
    cassandra: CassandraSettings | None = None
    metadata_keyspace: str = "MetadataStore"


@dataclass(frozen=True, slots=True)
class FrontEndSettings:
    """A compatibility front end: the application it serves, the address prefixes whose
    requests need no credentials (``all``: every address), and AweQ's one queue."""

    application: str
    hosts_allow: tuple[str, ...] = ()
    queue: str = DEFAULT_AWEQ_QUEUE


@dataclass(frozen=True, slots=True)
class Settings:
    application_keys: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    storage: StorageSettings = field(default_factory=StorageSettings)
    limits: Limits = field(default_factory=Limits)
    sweep_interval: float = 10.0
    sweep_batch: int = 1000
    log_level: str = "info"
    #: One line per request (``off``, ``text`` or ``json``).
    access_log: str = "text"
    #: ``GET /metrics`` and the instrumentation behind it.
    metrics: bool = True
    #: The bearer token ``GET /metrics`` needs from clients outside loopback.
    metrics_token: str | None = None
    cors_origins: tuple[str, ...] = ()
    cors: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    token_secrets: tuple[str, ...] = ()
    token_issuers: Mapping[str, Path] = field(default_factory=lambda: MappingProxyType({}))
    restmq: FrontEndSettings | None = None
    aweq: FrontEndSettings | None = None
    quotas: QuotaSettings = field(default_factory=QuotaSettings)
    config_path: Path | None = None
    warnings: tuple[str, ...] = ()


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the config file (``path``, else ``$QUEUEY_CONFIG``, else none), then the environment.

    Raises:
        ConfigError: the file is missing or unreadable, or a setting's value is not allowed.
    """
    env = os.environ if environ is None else environ
    source = ""
    if path is None and env.get("QUEUEY_CONFIG"):
        path, source = env["QUEUEY_CONFIG"], " (from QUEUEY_CONFIG)"
    config_path = None if path is None else Path(os.path.abspath(os.fspath(path)))
    raw = {} if config_path is None else _read_file(config_path, source)
    warnings: list[str] = []
    _apply_environ(raw, env, warnings)
    _warn_unknown_sections(raw, warnings)
    sections = {name: _Section(name, raw.get(name, {}), warnings) for name in _SECTIONS}
    queuey = sections["queuey"]
    limits = _limits(queuey)
    application_keys = _application_keys(sections["application_keys"], limits.max_name_length)
    applications = set(application_keys) or {DEFAULT_APPLICATION}
    settings = Settings(
        application_keys=application_keys,
        storage=_storage(sections["storage"], sections["metadata"]),
        limits=limits,
        sweep_interval=queuey.seconds("sweep_interval", 10.0, *SWEEP_INTERVAL_RANGE),
        sweep_batch=queuey.integer("sweep_batch", 1000, *SWEEP_BATCH_RANGE),
        log_level=queuey.choice("log_level", "info", LOG_LEVELS),
        access_log=queuey.choice("access_log", "text", ACCESS_LOG_FORMATS),
        metrics=queuey.boolean("metrics", True),
        metrics_token=queuey.text("metrics_token", None),
        cors_origins=_origins(queuey, "cors_origins", True),
        cors=_per_application(sections["cors"], lambda s, app: _origins(s, app, False)),
        token_secrets=_secrets(queuey),
        token_issuers=_per_application(sections["token_issuers"], _issuer_file),
        restmq=_front_end(sections["restmq"], applications, limits.max_name_length),
        aweq=_front_end(sections["aweq"], applications, limits.max_name_length),
        quotas=_quota_settings(sections["quotas"], sections["application_quotas"], applications),
        config_path=config_path,
    )
    for section in sections.values():
        section.warn_unused()
    return replace(settings, warnings=tuple(warnings))


def with_default_application(settings: Settings) -> tuple[Settings, str | None]:
    """Give keyless settings the application ``queuey`` and a key that survives restarts.

    The key is generated once into ``<storage path>/application_key`` (mode 0600) and read back on
    later starts; concurrent first starts agree on one key. The memory back-end stores nothing, so
    it gets a new key every start.

    Returns:
        The settings with the application added, and its key when it was generated now (None
        when it was read back); or the settings unchanged and None when they already have
        application keys.
    """
    if settings.application_keys:
        return settings, None
    warnings = list(settings.warnings)
    if settings.storage.backend == "memory":
        key, generated = new_key(), True
    else:
        try:
            key, generated = stored_key(settings.storage.path / KEY_FILE_NAME, warnings)
        except KeyFileError as error:
            raise ConfigError(str(error)) from None
    keys = MappingProxyType({DEFAULT_APPLICATION: (key,)})
    with_key = replace(settings, application_keys=keys, warnings=tuple(warnings))
    return with_key, key if generated else None


def token_secrets(settings: Settings) -> tuple[str, ...]:
    """The configured token secrets, else one generated once into ``<storage path>/token_secret``
    (mode 0600) like the application key; the memory back-end gets a new one every start.

    Raises:
        ConfigError: the secret file cannot be used.
    """
    if settings.token_secrets:
        return settings.token_secrets
    if settings.storage.backend == "memory":
        return (new_key(32),)
    try:
        path = settings.storage.path / TOKEN_SECRET_FILE_NAME
        return (stored_key(path, [], lambda: new_key(32))[0],)
    except KeyFileError as error:
        raise ConfigError(str(error)) from None


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Value:
    text: str
    env: str | None = None  # the environment variable it came from; None for the file


_Raw = dict[str, dict[str, _Value]]


class _Parser(configparser.RawConfigParser):
    def optionxform(self, optionstr: str) -> str:
        return optionstr  # application names keep their case


def _read_file(path: Path, source: str) -> _Raw:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"config file {path}{source} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path}{source} cannot be read: {error}") from None
    # A default section that no file names, so [DEFAULT] stays an ordinary section.
    parser = _Parser(default_section="\0", strict=True, empty_lines_in_values=False)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as error:
        raise ConfigError(f"config file {path}: {error.message}") from None
    raw: _Raw = {}
    for section in parser.sections():
        values = raw[section] = {}
        for key, value in parser.items(section):
            value = value.replace("%(here)s", str(path.parent))
            if section not in _APPLICATION_SECTIONS:
                key, value = key.lower(), _unquote(value)
                if key in values:
                    raise ConfigError(f"config file {path}: [{section}] {key} is set twice")
            values[key] = _Value(value)
    return raw


def _unquote(text: str) -> str:
    text = text.strip()
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _apply_environ(raw: _Raw, environ: Mapping[str, str], warnings: list[str]) -> None:
    for var in sorted(environ):
        if (
            not var.startswith("QUEUEY_")
            or var == "QUEUEY_CONFIG"
            or var.startswith("QUEUEY_TEST_")
        ):
            continue
        rest = var[len("QUEUEY_") :]
        section = next((s for s in _SECTIONS if rest.startswith(s.upper() + "_")), None)
        if section is None:
            warnings.append(
                f"environment: {var} is not a Queuey setting (QUEUEY_<SECTION>_<KEY>); ignored"
            )
            continue
        key = rest[len(section) + 1 :].lower()
        values = raw.setdefault(section, {})
        if section in _APPLICATION_SECTIONS:
            key = _file_application(values, key, var)
            values[key] = _Value(environ[var], var)
        else:
            values[key] = _Value(_unquote(environ[var]), var)


def _file_application(values: Mapping[str, _Value], name: str, var: str) -> str:
    matches = [app for app in values if app.lower() == name]
    if len(matches) > 1:
        raise ConfigError(f"{var}: matches applications {', '.join(matches)}; rename one")
    return matches[0] if matches else name


def _warn_unknown_sections(raw: _Raw, warnings: list[str]) -> None:
    unknown = [name for name in raw if name not in _SECTIONS]
    original = [name for name in unknown if is_original_section(name)]
    if original:
        warnings.append(original_sections_warning(original))
    for name in unknown:
        if name not in original:
            warnings.append(f"config: section [{name}] is not used by Queuey; ignored")


class _Section:
    """One section's values, read through typed getters that remember which keys were used."""

    def __init__(self, name: str, values: Mapping[str, _Value], warnings: list[str]) -> None:
        self.name = name
        self.values = values
        self.warnings = warnings
        self.used: set[str] = set()
        self.known: dict[str, str] = {}  # key -> the back-ends it belongs to, for warnings

    def get(self, key: str) -> _Value | None:
        self.used.add(key)
        return self.values.get(key)

    def where(self, key: str) -> str:
        value = self.values.get(key)
        if value is not None and value.env is not None:
            return f"environment: {value.env}"
        return f"config: [{self.name}] {key}"

    def fail(self, key: str, reason: str, secret: bool = False) -> ConfigError:
        value = self.values[key]
        shown = "…" if secret else value.text
        return ConfigError(f'[{self.name}] {key} = "{shown}"{_origin(value)}: {reason}')

    def parse(self, key: str, default: T, convert: Callable[[str], T | None], allowed: str) -> T:
        value = self.get(key)
        if value is None:
            return default
        result = convert(value.text)
        if result is None:
            raise self.fail(key, allowed)
        return result

    def integer(self, key: str, default: int, minimum: int, maximum: int) -> int:
        def convert(text: str) -> int | None:
            ok = re.fullmatch(r"[+-]?[0-9]{1,18}", text) and minimum <= int(text) <= maximum
            return int(text) if ok else None

        allowed = f"must be an integer from {minimum} to {maximum}"
        return self.parse(key, default, convert, allowed)

    def seconds(self, key: str, default: float, minimum: float, maximum: float) -> float:
        def convert(text: str) -> float | None:
            try:
                number = float(text) if text.isascii() else math.nan
            except ValueError:  # not a number
                return None
            return number if minimum <= number <= maximum else None  # never NaN

        allowed = f"must be a number of seconds from {minimum:g} to {maximum:g}"
        return self.parse(key, default, convert, allowed)

    def choice(self, key: str, default: str, choices: Iterable[str]) -> str:
        options = tuple(choices)
        allowed = f"must be one of {', '.join(options)}"
        return self.parse(key, default, lambda text: _pick(text.lower(), options), allowed)

    def boolean(self, key: str, default: bool) -> bool:
        def convert(text: str) -> bool | None:
            lowered = text.lower()
            return True if lowered in _TRUE else False if lowered in _FALSE else None

        return self.parse(key, default, convert, "must be true or false")

    def text(self, key: str, default: str | None) -> str | None:
        value = self.get(key)
        return default if value is None else value.text or None

    def warn_unused(self) -> None:
        for key in self.values:
            if key in self.used:
                continue
            if key in self.known:
                self.warnings.append(f"{self.where(key)} is a {self.known[key]}; ignored")
            else:
                self.warnings.append(f"{self.where(key)} is not a Queuey setting; ignored")


def _pick(text: str, options: tuple[str, ...]) -> str | None:
    return text if text in options else None


# --- sections -----------------------------------------------------------------------------------


def _limits(section: _Section) -> Limits:
    defaults = Limits()
    values = {
        f.name: section.integer(f.name, getattr(defaults, f.name), *LIMIT_RANGES[f.name])
        for f in fields(Limits)
    }
    for what in ("read_limit", "list_limit", "ttl"):
        default_key, max_key = f"default_{what}", f"max_{what}"
        if values[default_key] > values[max_key]:
            if default_key in section.values:
                raise section.fail(default_key, f"must not exceed {max_key} ({values[max_key]})")
            raise section.fail(max_key, f"must be at least {default_key} ({values[default_key]})")
    return Limits(**values)


def _quotas(section: _Section) -> Quotas:
    quotas = Quotas(**{name: section.integer(name, 0, *QUOTA_RANGES[name]) for name in QUOTA_NAMES})
    if quotas.post_burst and not quotas.post_rate:
        raise section.fail("post_burst", _BURST_ALONE)
    return quotas


def _quota_settings(section: _Section, own: _Section, applications: Iterable[str]) -> QuotaSettings:
    every = _quotas(section)
    by_app = _application_quotas(own, every, applications)
    default = QuotaSettings().measure_interval
    interval = section.seconds("measure_interval", default, *MEASURE_INTERVAL_RANGE)
    if "measure_interval" in section.values and not any(
        q.measured for q in (every, *by_app.values())
    ):
        section.warnings.append(
            f"{section.where('measure_interval')}: no application has a max_stored_bytes or "
            "max_stored_messages quota to measure; ignored"
        )
    return QuotaSettings(every, by_app, interval)


def _application_quotas(
    section: _Section, quotas: Quotas, applications: Iterable[str]
) -> Mapping[str, Quotas]:
    """Each application's quotas: ``quotas`` with the values its line gives."""
    found: dict[str, Quotas] = {}
    for name, value in section.values.items():
        section.used.add(name)
        app = _file_application(dict.fromkeys(applications, value), name.lower(), name)
        if app not in applications:
            raise section.fail(
                name, f"must be a configured application ({', '.join(sorted(applications))})"
            )
        items = [item for item in re.split(r"[\s,]+", value.text) if item]
        given: dict[str, int] = {}
        for item in items:
            match = _QUOTA_ITEM.fullmatch(item.lower())
            if match is None or match[1] not in QUOTA_RANGES:
                raise section.fail(
                    name,
                    f"{item!r} is not <quota>=<value>, <quota> one of {', '.join(QUOTA_NAMES)}",
                )
            low, high = QUOTA_RANGES[match[1]]
            if not re.fullmatch(r"[0-9]{1,18}", match[2]) or not low <= int(match[2]) <= high:
                raise section.fail(name, f"{match[1]} must be an integer from {low} to {high}")
            given[match[1]] = int(match[2])
        if not given:
            raise section.fail(name, "needs at least one <quota>=<value>")
        found[app] = replace(quotas, **given)
        if found[app].post_burst and not found[app].post_rate:
            raise section.fail(name, _BURST_ALONE)
    return MappingProxyType(found)


def _application_keys(section: _Section, max_name_length: int) -> Mapping[str, tuple[str, ...]]:
    owners: dict[str, str] = {}
    applications: dict[str, tuple[str, ...]] = {}
    for name, value in section.values.items():
        section.used.add(name)
        if not _NAME.fullmatch(name) or len(name) > max_name_length:
            raise ConfigError(
                f'[application_keys] "{name}"{_origin(value)}: an application name is 1 to '
                f"{max_name_length} characters from A-Z a-z 0-9 _ . -"
            )
        keys = [key for key in _KEY_SEPARATORS.split(value.text) if key]
        if not keys:
            raise section.fail(name, "needs at least one key")
        for key in keys:
            bad = bad_character(key)
            if bad is not None:
                raise ConfigError(
                    f"[application_keys] {name}{_origin(value)}: key {_mask(key)} contains "
                    f"{bad!r}; a key is printable ASCII without spaces, commas, quotes or ';'"
                )
            if len(key) < MIN_KEY_LENGTH:
                raise ConfigError(
                    f"[application_keys] {name}{_origin(value)}: key {_mask(key)} has "
                    f"{len(key)} characters; a key has at least {MIN_KEY_LENGTH} (e.g. "
                    f"32 hex digits: python -c 'import secrets; print(secrets.token_hex(16))')"
                )
            owner = owners.setdefault(key, name)
            if owner != name:
                raise ConfigError(
                    f"[application_keys] {name}{_origin(value)}: key {_mask(key)} is already "
                    f"used by application {owner}; a key must identify one application"
                )
        if len(set(keys)) < len(keys):
            section.warnings.append(f"{section.where(name)} lists a key twice")
        applications[name] = tuple(dict.fromkeys(keys))
    return MappingProxyType(applications)


def _origins(section: _Section, key: str, star: bool) -> tuple[str, ...]:
    value = section.get(key)
    if value is None:
        return ()
    origins = tuple(dict.fromkeys(o.strip().rstrip("/").lower() for o in value.text.split(",")))
    for origin in origins:
        if not (_ORIGIN.fullmatch(origin) or (star and origin == "*")):
            allowed = "scheme://host[:port]" + (" or *" if star else "")
            raise section.fail(key, f"{origin!r} is not an origin ({allowed}, comma separated)")
    return tuple(o for o in origins if o)


def _per_application(section: _Section, parse: Callable[[_Section, str], T]) -> Mapping[str, T]:
    return MappingProxyType({app: parse(section, app) for app in section.values})


def _secrets(section: _Section) -> tuple[str, ...]:
    value = section.get("token_secrets")
    if value is None:
        return ()
    secrets = tuple(s for s in _KEY_SEPARATORS.split(value.text) if s)
    if not secrets or any(len(s) < 32 for s in secrets):
        raise section.fail("token_secrets", "needs secrets of at least 32 characters", True)
    return secrets


def _issuer_file(section: _Section, app: str) -> Path:
    value = section.get(app)
    assert value is not None
    path = Path(os.path.abspath(value.text))
    if not path.is_file():
        raise section.fail(app, "is not a file (a PEM public key or a JWKS file)")
    return path


def _origin(value: _Value) -> str:
    return f" (from {value.env})" if value.env else ""


def _mask(key: str) -> str:
    return f'"{key[:4]}…"' if len(key) > 8 else '"…"'


def _storage(storage: _Section, metadata: _Section) -> StorageSettings:
    backend = _backend(storage, "sqlite")
    metadata_backend = _backend(metadata, backend)
    if metadata_backend != backend:
        raise metadata.fail(
            "backend",
            f"must name the same back-end as [storage] backend ({backend}): Queuey keeps queue "
            "metadata in the same store as the messages",
        )
    storage.known = _owners(_STORAGE_KEYS, backend)
    metadata.known = _owners(_metadata_keys(), backend)
    path = Path(os.path.abspath(DEFAULT_PATH))
    if backend != "memory":
        path = _path(storage, path)
    result = StorageSettings(backend=backend, path=path)
    if backend == "sqlite":
        if _path(metadata, path) != path:
            raise metadata.fail("path", f"must be the same directory as [storage] path ({path})")
        durability = storage.choice("durability", "normal", ("normal", "full"))
        return replace(result, durability=durability)
    if backend == "cassandra":
        cassandra = _cassandra(storage, CassandraSettings(), with_base_delay=True)
        return replace(
            result,
            cassandra=cassandra,
            metadata_keyspace=_metadata_cassandra(metadata, cassandra),
        )
    return result


def _front_end(
    section: _Section, applications: Iterable[str], max_name_length: int
) -> FrontEndSettings | None:
    options = ("hosts_allow", "queue") if section.name == "aweq" else ("hosts_allow",)
    needs = f"setting that needs [{section.name}] application"
    section.known = dict.fromkeys(options, needs)
    application = section.text("application", None)
    if application is None:
        return None
    if application not in applications:
        raise section.fail(
            "application", f"must be a configured application ({', '.join(sorted(applications))})"
        )
    hosts = tuple(
        item for item in re.split(r"[\s,]+", section.text("hosts_allow", "") or "") if item
    )
    queue = DEFAULT_AWEQ_QUEUE
    if section.name == "aweq":

        def convert(text: str) -> str | None:
            return text if _NAME.fullmatch(text) and len(text) <= max_name_length else None

        allowed = f"must be a queue name: 1 to {max_name_length} characters from A-Z a-z 0-9 _ . -"
        queue = section.parse("queue", DEFAULT_AWEQ_QUEUE, convert, allowed)
    return FrontEndSettings(application, hosts, queue)


def _owners(keys: Mapping[str, tuple[str, ...]], backend: str) -> dict[str, str]:
    owners: dict[str, list[str]] = {}
    for name, names in keys.items():
        for key in names:
            owners.setdefault(key, []).append(name)
    return {
        key: f"{' and '.join(names)} setting, not used with backend {backend}"
        for key, names in owners.items()
    }


def _metadata_keys() -> dict[str, tuple[str, ...]]:
    cassandra = tuple(key for key in _CASSANDRA_KEYS if key != "base_delay")
    return {"sqlite": ("path",), "memory": (), "cassandra": cassandra}


def _backend(section: _Section, default: str) -> str:
    allowed = f"must be one of {', '.join(BACKENDS)} (or the original's {', '.join(ALIASES)})"
    return section.parse("backend", default, backend_named, allowed)


def _path(section: _Section, default: Path) -> Path:
    def convert(text: str) -> Path | None:
        return Path(os.path.abspath(os.path.expanduser(text))) if text else None

    path = section.parse("path", default, convert, "must be a directory")
    if path.exists() and not path.is_dir():
        raise section.fail("path", f"{path} exists and is not a directory")
    return path


def _cassandra(
    section: _Section, defaults: CassandraSettings, with_base_delay: bool
) -> CassandraSettings:
    hosts = section.parse(
        "host", defaults.hosts, _hosts, "must be host or host:port, comma-separated"
    )
    if "host" in section.values and any(port == 9160 for _, port in hosts):
        section.warnings.append(
            f"{section.where('host')}: port 9160 is Thrift, which the original Queuey used; Queuey "
            f"speaks Cassandra's native protocol (default port {CASSANDRA_PORT})"
        )
    keyspace = section.parse(
        "database",
        defaults.keyspace,
        lambda text: text if _KEYSPACE.fullmatch(text) else None,
        "must be a Cassandra keyspace name: 1 to 48 characters from A-Z a-z 0-9 _",
    )
    settings = CassandraSettings(
        hosts=hosts,
        username=section.text("username", defaults.username),
        password=section.text("password", defaults.password),
        keyspace=keyspace,
        multi_dc=section.boolean("multi_dc", defaults.multi_dc),
        create_schema=section.boolean("create_schema", defaults.create_schema),
        base_delay=section.integer("base_delay", 0, 0, 3600) if with_base_delay else 0,
        replication_factor=section.integer(
            "replication_factor", defaults.replication_factor, 1, 99
        ),
        replication=section.parse(
            "replication", defaults.replication, _factors, "must be dc:factor, comma-separated"
        ),
        local_dc=section.text("local_dc", defaults.local_dc),
        connect_timeout=section.seconds(
            "connect_timeout", defaults.connect_timeout, *CASSANDRA_TIMEOUT_RANGE
        ),
        request_timeout=section.seconds(
            "request_timeout", defaults.request_timeout, *CASSANDRA_TIMEOUT_RANGE
        ),
    )
    if (settings.username is None) != (settings.password is None):
        given = "username" if settings.username is not None else "password"
        missing = "password" if given == "username" else "username"
        raise ConfigError(f"[{section.name}] {given} is set but {missing} is not; set both")
    return settings


def _metadata_cassandra(metadata: _Section, storage: CassandraSettings) -> str:
    defaults = replace(storage, keyspace="MetadataStore")
    settings = _cassandra(metadata, defaults, with_base_delay=False)
    for key in _metadata_keys()["cassandra"]:
        attribute = "hosts" if key == "host" else "keyspace" if key == "database" else key
        if key != "database" and getattr(settings, attribute) != getattr(storage, attribute):
            raise metadata.fail(
                key,
                f"must match [storage] {key}: Queuey keeps queue metadata in the same "
                "Cassandra cluster as the messages",
                secret=key == "password",
            )
    return settings.keyspace


def _factors(text: str) -> tuple[tuple[str, int], ...] | None:
    factors: list[tuple[str, int]] = []
    for item in re.split(r"[\s,]+", text):
        if not item:
            continue
        dc, _, factor = item.rpartition(":")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", dc) or not re.fullmatch(r"[1-9][0-9]{0,1}", factor):
            return None
        factors.append((dc, int(factor)))
    return tuple(factors) or None


def _hosts(text: str) -> tuple[tuple[str, int], ...] | None:
    hosts: list[tuple[str, int]] = []
    for item in re.split(r"[\s,]+", text):
        if not item:
            continue
        host, port = item, str(CASSANDRA_PORT)
        if item.startswith("["):  # [IPv6 address]:port
            host, _, rest = item[1:].partition("]")
            if rest:
                if not rest.startswith(":"):
                    return None
                port = rest[1:]
        elif item.count(":") == 1:
            host, port = item.split(":")
        if not host or not re.fullmatch(r"[0-9]{1,5}", port) or not 0 < int(port) < 65536:
            return None
        hosts.append((host, int(port)))
    return tuple(hosts) or None
