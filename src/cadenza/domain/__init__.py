"""The pure core: definitions, instances, tasks, scheduling. Imports only the stdlib."""
