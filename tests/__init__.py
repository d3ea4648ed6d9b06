"""ulasan's test suite (importable so tests can share helpers)."""
