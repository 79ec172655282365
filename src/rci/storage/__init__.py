"""Object storage behind one small interface (local directory or S3), and the feature cache on top of it."""
