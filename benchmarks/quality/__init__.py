"""The generalisation benchmark's parts: held-out media pools, the set built from them, the scorers."""
