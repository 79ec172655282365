"""Misspelt `RCI_*` environment variables, named at start-up with the closest real setting.

Settings ignore unknown `RCI_*` variables (`extra="ignore"`), so `RCI_KAFKA_BOOTSTRAPS=broker:9092`
would silently leave the default broker in force. The CLI entry point calls `unknown_variables` on
its environment and prints one warning per unknown name, with the closest valid one (difflib).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rci.core.settings import ENV_PREFIX, Settings, env_name

# RCI_* variables read outside Settings: by scripts (find_python.sh, bootstrap.sh), the jar cache
# (rci.services.kafka_jars) and the test suite.
OTHER_VARIABLES = frozenset({"RCI_CACHE_DIR", "RCI_PYTHON"})
OTHER_PREFIXES = ("RCI_TEST_",)


@dataclass(frozen=True)
class UnknownVariable:
    name: str
    suggestion: str | None  # the closest valid name, if any is close

    def message(self) -> str:
        hint = f"; did you mean {self.suggestion}?" if self.suggestion else ""
        return f"warning: {self.name} is not an rci setting and is ignored{hint}"


def valid_names(fields: Iterable[str] | None = None) -> frozenset[str]:
    """Every `RCI_*` name something in the project reads: the settings fields and OTHER_VARIABLES."""
    return frozenset(env_name(f) for f in (Settings.model_fields if fields is None else fields)) | OTHER_VARIABLES


def unknown_variables(environ: Mapping[str, str], fields: Iterable[str] | None = None) -> list[UnknownVariable]:
    """The `RCI_*` names in `environ` that nothing reads, each with its closest valid name (or None).

    Names compare case-insensitively, as the settings read them."""
    valid = valid_names(fields)
    choices = sorted(valid)
    unknown = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in valid or upper.startswith(OTHER_PREFIXES):
            continue
        close = difflib.get_close_matches(upper, choices, n=1, cutoff=0.75)
        unknown.append(UnknownVariable(name, close[0] if close else None))
    return unknown
