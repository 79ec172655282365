"""One intra-op thread for the tiny models (tests.torch_threads)."""

from tests.torch_threads import one_torch_thread  # noqa: F401  (autouse: one intra-op thread)
