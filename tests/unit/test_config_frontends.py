"""The settings of the compatibility front ends: ``[restmq]`` and ``[aweq]``."""

from __future__ import annotations

from pathlib import Path

from queuey.config import FrontEndSettings
from tests.unit.test_config import KEY, config_error, load

KEYS = f"[application_keys]\nqueuey = {KEY}\n"


def test_both_front_ends_are_off_by_default(tmp_path: Path) -> None:
    settings = load(tmp_path, KEYS)
    assert (settings.restmq, settings.aweq) == (None, None)


def test_an_application_turns_a_front_end_on(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        KEYS + "[restmq]\napplication = queuey\nhosts_allow = 127.0.0. 10.1.,192.168.\n"
        "[aweq]\napplication = queuey\nqueue = jobs\n",
    )
    assert settings.restmq == FrontEndSettings("queuey", ("127.0.0.", "10.1.", "192.168."))
    assert settings.aweq == FrontEndSettings("queuey", (), "jobs")
    assert settings.warnings == ()


def test_the_environment_turns_a_front_end_on(tmp_path: Path) -> None:
    settings = load(tmp_path, KEYS, {"QUEUEY_AWEQ_APPLICATION": "queuey"})
    assert settings.aweq == FrontEndSettings("queuey", (), "aweq")


def test_without_keys_a_front_end_serves_the_default_application(tmp_path: Path) -> None:
    assert load(tmp_path, "[restmq]\napplication = queuey\n").restmq is not None
    assert "must be a configured application" in config_error(
        tmp_path, "[restmq]\napplication = other\n"
    )


def test_an_unknown_application_or_a_bad_queue_name_is_an_error(tmp_path: Path) -> None:
    assert "must be a configured application (queuey)" in config_error(
        tmp_path, KEYS + "[aweq]\napplication = nobody\n"
    )
    assert "must be a queue name" in config_error(
        tmp_path, KEYS + "[aweq]\napplication = queuey\nqueue = no spaces\n"
    )


def test_settings_of_a_front_end_that_is_off_are_reported(tmp_path: Path) -> None:
    settings = load(tmp_path, KEYS + "[aweq]\nqueue = jobs\n[restmq]\nport = 8888\n")
    assert settings.aweq is None
    assert set(settings.warnings) == {
        "config: [aweq] queue is a setting that needs [aweq] application; ignored",
        "config: [restmq] port is not a Queuey setting; ignored",
    }
