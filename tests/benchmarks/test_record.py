from benchmarks.record import command_line, module_of


def test_rerun_command_names_the_module_not_the_machines_path() -> None:
    assert module_of("/home/someone/checkout/benchmarks/load.py") == "benchmarks.load"
    assert module_of("benchmarks.load") == "benchmarks.load"
    assert command_line("benchmarks.load", ["--workdir", "/tmp/a b"]) == "python -m benchmarks.load --workdir '/tmp/a b'"
