"""A real S3-compatible server for local runs and tests: moto's standalone server, as a subprocess.

Why moto's server: it installs from PyPI with the dev extra (no Docker, no extra binary to fetch),
and it speaks the S3 REST API over plain HTTP, so the object store's S3 backend is exercised through
aiobotocore's real request signing, HTTP transport and error parsing, exactly as against MinIO or AWS
(docker-compose uses MinIO). It accepts any credentials and keeps objects in memory: a restart
forgets every bucket.
"""

from __future__ import annotations

import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from rci.services.ports import LOOPBACK, free_port
from rci.services.process import ManagedProcess, ServiceError, ServiceProcess

ACCESS_KEY = "test"  # moto accepts any key pair; these are what the tests and the demo use
SECRET_KEY = "test"
REGION = "us-east-1"


class S3Server(ServiceProcess):
    """`moto.server` on host:port. Use as a context manager, or start()/stop()."""

    access_key = ACCESS_KEY
    secret_key = SECRET_KEY
    region = REGION

    def __init__(self, port: int | None = None, host: str = LOOPBACK, log_path: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"rci-s3server-{self.port}.log"
        self._process = ManagedProcess(
            "s3",
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            self.log_path,
        )

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        return self.endpoint_url

    def answers(self) -> bool:
        """True once the server answers an S3 ListBuckets request."""
        try:
            with urllib.request.urlopen(self.endpoint_url + "/", timeout=1.0) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def create_bucket(self, name: str) -> None:
        ensure_bucket(self.endpoint_url, self.access_key, self.secret_key, name, self.region)


def ensure_bucket(endpoint_url: str, access_key: str, secret_key: str, name: str, region: str = REGION) -> bool:
    """Create bucket `name` on any S3-compatible server unless it exists. True when it was created.

    Synchronous (botocore) on purpose: this is set-up code, run before any event loop.
    """
    import botocore.session  # imported here: ~1 s, and only set-up code needs it
    from botocore.exceptions import ClientError

    client = botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint_url, aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
    )
    try:
        client.create_bucket(Bucket=name)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            return False
        raise ServiceError(f"cannot create bucket {name!r} at {endpoint_url}: {exc}") from exc
    finally:
        client.close()
