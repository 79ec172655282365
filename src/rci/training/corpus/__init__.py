"""The RCI corpus generator: synthetic sources, their reproductions, hard negatives, and a labelled manifest.

Entry points: `rci.training.corpus.generate.make_corpus` (Python) and `rci corpus make` (CLI); the
manifest is read back with `rci.training.corpus.manifest.CorpusManifest.load`. See docs/corpus.md.
"""
