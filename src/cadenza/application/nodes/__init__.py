"""Node executors: one per worker node type, each seeing only the application ports."""
