"""`rci train|distill|eval` options: typed choices, and a file that is no checkpoint is a message."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rci.cli.main import app


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"RCI_DATA_DIR": str(tmp_path / "rci"), "COLUMNS": "200"}


@pytest.mark.parametrize(
    ("args", "option", "choices"),
    [
        (["--variant", "V+X"], "--variant", ("V", "V+A", "V+T", "V+A+T")),
        (["--model", "matchbig"], "--model", ("matchlite", "matchlm")),
        (["--size", "large"], "--size", ("small", "paper")),
        (["--backbone", "half"], "--backbone", ("lora", "full")),
        (["--device", "gpu"], "--device", ("auto", "cpu", "cuda")),
    ],
)
def test_train_refuses_an_unknown_choice_and_names_the_valid_ones(
    tmp_path: Path, env: dict[str, str], args: list[str], option: str, choices: tuple[str, ...]
) -> None:
    result = CliRunner().invoke(app, ["train", "--corpus", str(tmp_path), "--out", str(tmp_path / "m.pt"), *args], env=env)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output
    for choice in choices:
        assert choice in result.output


def test_help_lists_the_choices_as_types(env: dict[str, str]) -> None:
    shown = CliRunner().invoke(app, ["train", "--help"], env=env).output
    for choices in ("<matchlite|matchlm>", "<V|V+A|V+T|V+A+T>", "<small|paper>", "<lora|full>", "<auto|cpu|cuda>"):
        assert choices in shown
    assert "<lora|full>" in CliRunner().invoke(app, ["report", "--help"], env=env).output
    assert "<small|paper>" in CliRunner().invoke(app, ["encoders", "build", "--help"], env=env).output


@pytest.fixture
def not_a_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "notes.pt"
    path.write_text("these are notes, not weights\n")
    return path


def _fails_with_a_message(result, path: Path) -> None:
    assert result.exit_code == 1, result.output
    assert f"{path.name} is not a MatchLite checkpoint" in " ".join(result.output.split())
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


def test_eval_refuses_a_file_that_is_no_checkpoint_before_loading_features(
    tmp_path: Path, env: dict[str, str], not_a_checkpoint: Path
) -> None:
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["eval", "--corpus", str(tmp_path), "--checkpoint", str(not_a_checkpoint)], env=env)
    _fails_with_a_message(result, not_a_checkpoint)
    assert time.perf_counter() - started < 60


def test_distill_refuses_a_student_that_is_no_checkpoint(tmp_path: Path, env: dict[str, str], not_a_checkpoint: Path) -> None:
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    result = CliRunner().invoke(app, ["distill", "--corpus", str(tmp_path), "--student", str(not_a_checkpoint),
                                      "--teacher", str(teacher), "--out", str(tmp_path / "kd.pt")], env=env)  # fmt: skip
    _fails_with_a_message(result, not_a_checkpoint)



def test_the_teacher_and_stage_2_commands_default_to_the_librarys_recipe():
    """The CLI spells its defaults out (it imports no torch at start-up); they must be the library's."""
    import inspect

    from rci.cli.commands.training import distil_serving, teacher
    from rci.training.matchlmf import TEACHER_MODALITY_SOURCES
    from rci.training.serving_distil import DISTIL_EPOCHS, UNLABELLED_SOURCES

    def default(command, name):  # noqa: ANN001, ANN202
        return inspect.signature(command).parameters[name].default.default

    assert default(teacher, "modality_sources") == TEACHER_MODALITY_SOURCES
    assert default(distil_serving, "epochs") == DISTIL_EPOCHS
    assert default(distil_serving, "unlabelled_sources") == UNLABELLED_SOURCES
