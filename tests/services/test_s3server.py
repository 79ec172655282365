"""The local S3 server speaks the S3 REST API: a real client can create, write and read objects."""

from __future__ import annotations

import pytest
from aiobotocore.session import get_session

pytestmark = pytest.mark.integration


async def test_s3_server_round_trips_an_object(s3_server) -> None:
    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name=s3_server.region,
    ) as s3:
        await s3.create_bucket(Bucket="roundtrip")
        await s3.put_object(Bucket="roundtrip", Key="a/b.bin", Body=b"\x00payload\xff")
        got = await s3.get_object(Bucket="roundtrip", Key="a/b.bin")
        assert await got["Body"].read() == b"\x00payload\xff"
        listed = await s3.list_objects_v2(Bucket="roundtrip")
        assert [o["Key"] for o in listed["Contents"]] == ["a/b.bin"]
