"""docs/contract.md: its example records are what the contract models produce now (so they cannot
drift), each is valid on the wire, and the page names every field and dead-letter code."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from tests.kafka_helpers import consume_all
from rci.core.errors import RejectCode, RejectedEvent
from rci.core.settings import Settings
from rci.streams.contract_doc import example_records, example_topics, main, render_example, sync
from rci.streams.contracts import CONTRACTS, SCHEMA_DIR, parse_published, parse_published_record

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "contract.md"


def _section(topic: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"## `{topic}`")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def test_the_examples_are_what_the_models_produce() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert sync(text) == text, "docs/contract.md's examples are stale: run `python -m rci.streams.contract_doc`"


def test_every_topic_has_one_example_in_its_own_section() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert sorted(example_topics(text)) == sorted(CONTRACTS)
    for topic in CONTRACTS:
        assert example_topics(_section(topic)) == [topic]


@pytest.mark.parametrize("topic", sorted(CONTRACTS))
def test_each_example_is_valid_on_the_wire(topic: str) -> None:
    key, record = example_records()[topic]
    value = record.to_json_bytes()
    schema = json.loads((SCHEMA_DIR / f"{topic}.schema.json").read_text())
    jsonschema.validate(json.loads(value), schema)
    assert CONTRACTS[topic].model_validate_json(value) == record
    shown = re.search(r"```json\n(.*?)```", render_example(topic), re.DOTALL)
    assert shown and json.loads(shown[1]) == json.loads(value)
    if topic == "video.published":
        assert parse_published_record(value, key) == record
    else:
        assert key.decode() in (getattr(record, "video_id", None), "my video 3")


def test_the_example_dead_letter_is_what_the_worker_makes_of_its_original() -> None:
    key, dead = example_records()["video.published.dlq"]
    with pytest.raises(RejectedEvent) as caught:
        parse_published_record(base64.b64decode(dead.original), key)
    assert (caught.value.code, caught.value.detail) == (dead.error, dead.detail)
    with pytest.raises(RejectedEvent):
        parse_published(dead.original_bytes())


@pytest.mark.parametrize("topic", sorted(CONTRACTS))
def test_the_page_names_every_field(topic: str) -> None:
    section = _section(topic)
    for field in CONTRACTS[topic].model_fields:
        assert f"`{field}`" in section, f"docs/contract.md's {topic} section does not name `{field}`"


def test_the_page_lists_every_dead_letter_code() -> None:
    section = _section("video.published.dlq")
    for code in RejectCode:
        assert f"| `{code.value}` |" in section, f"docs/contract.md does not list the code {code.value}"


def test_the_check_fails_on_a_stale_copy_and_the_rewrite_fixes_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    copy = tmp_path / "contract.md"
    copy.write_text(DOC.read_text(encoding="utf-8").replace('"threshold": 0.42', '"threshold": 0.5'), encoding="utf-8")
    assert main(["--check", str(copy)]) == 1
    assert "differ from the models" in capsys.readouterr().out
    assert main([str(copy)]) == 0
    assert copy.read_text(encoding="utf-8") == DOC.read_text(encoding="utf-8")
    assert main(["--check", str(copy)]) == 0


def test_an_example_block_for_an_unknown_topic_is_an_error() -> None:
    with pytest.raises(ValueError, match="rci.nothing"):
        sync("<!-- example rci.nothing (x) -->\n<!-- end example -->\n")


def test_readme_links_the_contract_in_the_repository() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "](docs/contract.md)" in readme
    assert "../shared/CONTRACT.md" not in readme


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed (scripts/bootstrap.sh installs it)")
def test_the_pages_kcat_command_publishes_a_valid_keyed_event(rci_settings: Settings) -> None:
    text = DOC.read_text(encoding="utf-8")
    snippet = re.search(r"^printf .*?\| kcat [^\n]*-P[^\n]*$", text, re.DOTALL | re.MULTILINE)
    assert snippet, "docs/contract.md has no kcat publish command"
    command = (snippet[0].replace("127.0.0.1:9092", rci_settings.kafka_bootstrap)
               .replace("-t video.published ", f"-t {rci_settings.topic_published} "))  # fmt: skip
    run = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    (message,) = consume_all(rci_settings, rci_settings.topic_published, expected=1)
    event = parse_published_record(message.value(), message.key())
    assert message.key() == b"vid-0002" and event.video_id == "vid-0002"
