"""Features: fetch -> decode -> encode -> cache for one video or many (`pipeline`), and the feature cache (`cache`)."""
