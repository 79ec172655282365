"""Models and serving: frozen encoders, MatchLite (student), MatchLM (teacher), ONNX export, runtimes."""
