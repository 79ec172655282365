"""How S3 error answers are classified: per-key answers are final, the store failing is retried."""

from __future__ import annotations

import pickle

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from rci.core.errors import TransientError
from rci.storage.errors import ObjectNotFound, StorageUnavailable
from rci.storage.s3 import ObjectRefused, s3_errors


def client_error(code: str, status: int, operation: str = "GetObject") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


def raised(exc: BaseException) -> BaseException:
    with pytest.raises(Exception) as caught:
        with s3_errors("s3://media/videos/x.mp4"):
            raise exc
    return caught.value


@pytest.mark.parametrize(
    ("code", "status"),
    [("KeyTooLongError", 400), ("InvalidArgument", 400), ("AccessDenied", 403), ("InvalidObjectState", 403)],
)
def test_per_key_refusals_are_final_not_retried(code: str, status: int) -> None:
    error = raised(client_error(code, status))
    assert isinstance(error, ObjectRefused) and isinstance(error, ObjectNotFound)
    assert not isinstance(error, TransientError)
    assert error.code == code and code in str(error)
    assert isinstance(error.__cause__, ClientError)


def test_not_found_stays_not_found() -> None:
    error = raised(client_error("NoSuchKey", 404))
    assert type(error) is ObjectNotFound


@pytest.mark.parametrize(
    ("code", "status"),
    [("InternalError", 500), ("ServiceUnavailable", 503), ("SlowDown", 503), ("RequestTimeout", 400),
     ("ExpiredToken", 400), ("SignatureDoesNotMatch", 403), ("InvalidAccessKeyId", 403),
     ("RequestTimeTooSkewed", 403), ("403", 403), ("400", 400)],  # bare codes: a HEAD answer, undecidable
)
def test_store_and_credential_failures_stay_retried(code: str, status: int) -> None:
    assert isinstance(raised(client_error(code, status)), StorageUnavailable)


def test_connection_errors_stay_retried() -> None:
    assert isinstance(raised(EndpointConnectionError(endpoint_url="http://127.0.0.1:1")), StorageUnavailable)


def test_refusal_survives_pickling() -> None:
    refused = ObjectRefused("s3://b/k", "AccessDenied")
    again = pickle.loads(pickle.dumps(refused))
    assert (again.key, again.code, str(again)) == (refused.key, refused.code, str(refused))
