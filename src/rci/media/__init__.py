"""Media: fetch by media_uri (allow-listed file:// and s3://) and decode with PyAV.

    policy = media_policy(settings)                      # rci.media.policy: limits and allowed prefixes
    source = await fetch_media(uri, policy, s3_client)   # rci.media.fetch: Path (local) or bytes (S3)
    decoded = decode_media(source, policy)               # rci.media.decode: CPU work, run it in a pool

Every refusal is a `rci.media.errors.MediaRejected` carrying its `RejectCode`.
`rci.media.synth.write_test_video` writes real test clips for tests, benchmarks and the demo.
"""
