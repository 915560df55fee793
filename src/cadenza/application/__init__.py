"""Use cases and the engine; depends on the domain and on its own ports only."""
