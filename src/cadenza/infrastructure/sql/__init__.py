"""SQLAlchemy Core persistence for SQLite (default) and PostgreSQL."""
