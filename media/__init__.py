"""Media: fetch by media_uri (allow-listed file:// and s3://) and decode with PyAV.

    policy = media_policy(settings)                      # media.policy: limits and allowed prefixes
    source = await fetch_media(uri, policy, s3_client)   # media.fetch: Path (local) or bytes (S3)
    decoded = decode_media(source, policy)               # media.decode: CPU work, run it in a pool

Every refusal is a `media.errors.MediaRejected` carrying its `RejectCode`.
`media.synth.write_test_video` writes real test clips for tests, benchmarks and the demo.
"""
