"""The crash suite fails on any traceback in its children's logs except SQLAlchemy's pool
finalizer record (a connection a killed transaction left behind), which it counts."""

from __future__ import annotations

from tests.crash.harness import without_known_tracebacks


def test_only_the_pool_finalizer_record_is_taken_out_with_its_traceback() -> None:
    log = """failpoint after-commit (pass 1)
Exception during reset or similar
Traceback (most recent call last):
  File "/x/sqlalchemy/pool/base.py", line 1051, in _finalize_fairy
    fairy._reset(pool, transaction_was_reset, terminate_only, asyncio_safe)
  File "/x/asyncmy/connection.py", line 3, in rollback
    raise errors.OperationalError(2013, "Lost connection")

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/x/a.py", line 1, in f
asyncmy.errors.OperationalError: (2013, 'Lost connection to MySQL server during query')
failpoint after-commit (pass 2)
Traceback (most recent call last):
  File "/x/cadenza/engine.py", line 9, in g
RuntimeError: boom
"""
    kept, known = without_known_tracebacks(log)
    assert known == 1
    assert kept.count("Traceback") == 1
    assert "RuntimeError: boom" in kept
    assert "failpoint after-commit (pass 1)" in kept
    assert "failpoint after-commit (pass 2)" in kept
