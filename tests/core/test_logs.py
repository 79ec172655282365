"""Library logs (stdlib `logging`) come out as the project's own structured lines."""

from __future__ import annotations

import json
import logging

import pytest

from rci.core.logs import configure_logging, get_logger


@pytest.fixture
def root_logger_restored():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:], root.level = handlers, level


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_library_warning_is_a_json_line_with_its_logger(capsys, root_logger_restored) -> None:
    configure_logging("INFO", "json")
    configure_logging("INFO", "json")  # configuring twice installs one handler, not two
    # a logger made here: tools run earlier in the same process (import-linter's logging set-up) may have
    # disabled the loggers that existed then, aiokafka's among them
    library = logging.getLogger("a_library.client")
    library.error("Unable connect to %r", "127.0.0.1:9")
    library.info("chatter below WARNING stays out")
    get_logger("rci.test").info("ours", sasl_password="hunter2")
    lines = json_lines(capsys.readouterr().err)
    assert [(line["event"], line["level"], line.get("logger")) for line in lines] == [
        ("Unable connect to '127.0.0.1:9'", "error", "a_library.client"), ("ours", "info", None)]
    assert lines[0]["timestamp"] and lines[1]["sasl_password"] == "**********"


def test_a_library_exception_keeps_its_traceback_in_the_line(capsys, root_logger_restored) -> None:
    configure_logging("INFO", "json")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("faust").exception("agent crashed")
    [line] = json_lines(capsys.readouterr().err)
    assert line["event"] == "agent crashed" and "ValueError: boom" in line["exception"]
