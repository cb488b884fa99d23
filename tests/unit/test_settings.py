"""Settings from the environment: typed values, and a word about names that are not settings."""

import logging

import pytest

from stream.settings import Settings


def test_values_are_typed():
    settings = Settings.from_env({"SCORESTREAM_PARTITIONS": "8", "SCORESTREAM_CHALLENGERS": "0"})
    assert settings.partitions == 8 and settings.challengers is False


def test_an_invalid_value_is_refused_with_its_name():
    with pytest.raises(ValueError, match="SCORESTREAM_PARTITIONS"):
        Settings.from_env({"SCORESTREAM_PARTITIONS": "four"})


def test_unknown_names_are_reported_not_silently_ignored(caplog):
    with caplog.at_level(logging.WARNING, logger="stream.settings"):
        Settings.from_env({"SCORESTREAM_BATCH_TIMEOUT_S": "0.02", "SCORESTREAM_PARTITONS": "8",
                           "SCORESTREAM_TEST_BOOTSTRAP": "127.0.0.1:19092", "PATH": "/bin"})
    assert caplog.messages == ["ignoring unknown settings: SCORESTREAM_BATCH_TIMEOUT_S, "
                               "SCORESTREAM_PARTITONS"]
