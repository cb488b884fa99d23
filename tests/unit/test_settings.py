"""Settings from the environment: typed values, and a word about names that are not settings."""

import logging

import pytest

from stream.settings import Settings


def test_values_are_typed():
    settings = Settings.from_env({"SCORESTREAM_PARTITIONS": "8", "SCORESTREAM_CHALLENGERS": "inline",
                                  "SCORESTREAM_LABEL_GRACE_S": "0.5"})
    assert settings.partitions == 8 and settings.challengers == "inline"
    assert settings.label_grace_s == 0.5 and settings.worker_holds == "all"


def test_challengers_are_separate_or_inline():
    assert Settings().challengers == "separate" and Settings().worker_holds == "champion"
    with pytest.raises(ValueError, match="SCORESTREAM_CHALLENGERS='0': expected one of separate, inline"):
        Settings.from_env({"SCORESTREAM_CHALLENGERS": "0"})


def test_worker_holds_names_a_holding_of_the_task_models():
    from online_models.task_models import HOLDS

    assert {Settings(challengers=mode).worker_holds for mode in ("separate", "inline")} <= set(HOLDS)


def test_with_a_trainer_workers_hold_the_champion_and_the_trainer_what_workers_would_learn():
    assert Settings().learning == "workers"
    for challengers, learner in (("separate", "champion"), ("inline", "all")):
        settings = Settings(learning="trainer", challengers=challengers)
        assert settings.worker_holds == "champion" and settings.learner_holds == learner
        assert settings.challengers_process == (challengers == "separate")
    with pytest.raises(ValueError, match="SCORESTREAM_LEARNING='replicas': expected one of workers, trainer"):
        Settings.from_env({"SCORESTREAM_LEARNING": "replicas"})


def test_the_champion_is_the_registry_s_unless_configured():
    settings = Settings.from_env({"SCORESTREAM_FRAUD_CHAMPION": "logreg"})
    assert settings.champion("fraud") == "logreg" and settings.champion("lead") == "logreg"
    assert Settings().champion("fraud") == "arf"


def test_an_invalid_value_is_refused_with_its_name():
    with pytest.raises(ValueError, match="SCORESTREAM_PARTITIONS"):
        Settings.from_env({"SCORESTREAM_PARTITIONS": "four"})


def test_unknown_names_are_reported_not_silently_ignored(caplog):
    with caplog.at_level(logging.WARNING, logger="stream.settings"):
        Settings.from_env({"SCORESTREAM_BATCH_TIMEOUT_S": "0.02", "SCORESTREAM_PARTITONS": "8",
                           "SCORESTREAM_TEST_BOOTSTRAP": "127.0.0.1:19092", "PATH": "/bin"})
    assert caplog.messages == ["ignoring unknown settings: SCORESTREAM_BATCH_TIMEOUT_S, "
                               "SCORESTREAM_PARTITONS"]


def test_the_readme_documents_every_setting_and_no_other():
    """The README's configuration table is written by hand: it must not drift from Settings."""
    import re
    from dataclasses import fields
    from pathlib import Path

    from stream.settings import PREFIX

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(SCORESTREAM_[A-Z0-9_]+)` \| `?([^|`]*)`? \|", readme, re.M))
    defaults = {PREFIX + field.name.upper(): field.default for field in fields(Settings)}
    assert set(rows) == set(defaults)
    for name, default in defaults.items():  # a number or a word shown as it is; empty as "(empty)"
        shown = rows[name].strip()
        if default == "":
            assert shown == "(empty)", name
        else:
            spellings = {str(default), f"{default:g}" if isinstance(default, float) else str(default)}
            assert shown in spellings, (name, shown, spellings)
