"""Misspelt RCI_* variables are named with the closest real setting; real and known names pass."""

from __future__ import annotations

from rci.core.env_check import OTHER_VARIABLES, unknown_variables, valid_names
from rci.core.settings import Settings, env_name


def test_every_settings_field_and_script_variable_is_valid() -> None:
    environ = {env_name(field): "x" for field in Settings.model_fields} | {name: "x" for name in OTHER_VARIABLES}
    environ |= {"RCI_TEST_MILVUS_URI": "x", "PATH": "/bin", "HOME": "/root", "rci_log_level": "INFO"}
    assert unknown_variables(environ) == []
    assert "RCI_KAFKA_BOOTSTRAP" in valid_names()


def test_a_misspelt_name_gets_the_closest_valid_one() -> None:
    found = {u.name: u.suggestion for u in unknown_variables({
        "RCI_KAFKA_BOOTSTRAPS": "broker:9092", "RCI_LOGLEVEL": "DEBUG", "RCI_MODELDIR": "/m", "RCI_MILVUS_URL": "u",
        "RCI_TOPIC_SCORE": "t", "rci_devise": "cpu",
    })}
    assert found == {
        "RCI_KAFKA_BOOTSTRAPS": "RCI_KAFKA_BOOTSTRAP", "RCI_LOGLEVEL": "RCI_LOG_LEVEL", "RCI_MODELDIR": "RCI_MODEL_DIR",
        "RCI_MILVUS_URL": "RCI_MILVUS_URI", "RCI_TOPIC_SCORE": "RCI_TOPIC_SCORES", "rci_devise": "RCI_DEVICE",
    }


def test_an_unrelated_name_is_reported_without_a_guess() -> None:
    (unknown,) = unknown_variables({"RCI_FOO": "1"})
    assert unknown.suggestion is None
    assert unknown.message() == "warning: RCI_FOO is not an rci setting and is ignored"


def test_the_message_names_both() -> None:
    (unknown,) = unknown_variables({"RCI_KAFKA_BOOTSTRAPS": "x"})
    assert "RCI_KAFKA_BOOTSTRAPS" in unknown.message() and "did you mean RCI_KAFKA_BOOTSTRAP?" in unknown.message()
