"""Real-media sets made from pools that no training corpus uses: the generalisation benchmark's
(benchmarks/bench_quality.py) and the validation pairs the served threshold is chosen on."""
