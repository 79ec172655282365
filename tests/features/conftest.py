# The feature cache runs on both object store backends: reuse the storage tests' fixtures.
from tests.storage.conftest import s3_store, store  # noqa: F401
