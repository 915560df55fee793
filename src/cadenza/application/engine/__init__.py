"""The engine: a commit loop over a unit of work, policy, control nodes and handlers.

Modules, each depending only on those after it (import-linter checks it): ``loop`` (the
Engine: lifecycle, submit and after-commit), ``handlers``, ``decide``, ``control``, ``start``,
``batch``, ``policy``, ``unit_of_work``, ``settings``; ``commit`` (the group commit),
``sweeper`` and ``listeners`` sit between ``loop`` and ``handlers``. Usage arithmetic lives
in ``application/usage.py``.
"""

from cadenza.application.engine.loop import Engine
from cadenza.application.engine.settings import EngineSettings

__all__ = ["Engine", "EngineSettings"]
