"""PyYAML safe loading that refuses hostile documents while composing, before expanding them.

``BoundedLoader`` counts, as events arrive, the containers open around the node being
composed and, for every alias, what its anchor would add once expanded (values, characters of
scalars, height): a document past its ``YamlBudget`` ends in a ``ComposerError`` at the event
that crossed it, after a few hundred events for a billion-laughs document, and a recursive
alias is refused. ``duplicate_key`` finds a key given twice in one mapping (PyYAML keeps the
last one silently). The budgets and the error messages for files are ``documents``'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import yaml
from yaml.composer import Composer, ComposerError
from yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cadenza.domain.limits import child_path, clip

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlBudget(NamedTuple):
    """What one document may hold, aliases expanded."""

    depth: int  # containers nested
    aliases: int  # uses of an alias
    values: int  # values (scalars and containers)
    chars: int  # characters of scalars


class _BoundedComposer(Composer):
    """PyYAML's composer with depth and alias-expansion budgets checked as events arrive.

    For every composed node it keeps (values, characters, height) *as if aliases were
    expanded*; an alias adds its anchor's totals, so the budget is spent before anything is
    copied (construction shares alias targets, but every later JSON pass would expand them)."""

    def __init__(self, budget: YamlBudget) -> None:
        super().__init__()
        self._budget = budget
        self._open = 0  # containers around the node being composed
        self._aliases = 0
        self._values = 0
        self._chars = 0
        self._sizes: dict[int, tuple[int, int, int]] = {}

    if TYPE_CHECKING:  # the parser mixed in beside this composer provides events

        def peek_event(self) -> Any: ...

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            self._alias(event)
            return super().compose_node(parent, index)
        container = isinstance(event, MappingStartEvent | SequenceStartEvent)
        if container and self._open >= self._budget.depth:
            raise ComposerError(
                None, None, f"nested deeper than {self._budget.depth} levels", event.start_mark
            )
        self._open += container
        chars = len(event.value) if isinstance(event, ScalarEvent) else 0
        self._spend(1, chars, event)
        node = super().compose_node(parent, index)
        assert node is not None  # an event was peeked, so a node was composed
        self._open -= container
        self._sizes[id(node)] = self._measure(node, chars)
        return node

    def _alias(self, event: Any) -> None:
        target = self.anchors.get(event.anchor)
        if target is None:
            return  # PyYAML reports the undefined alias
        self._aliases += 1
        if self._aliases > self._budget.aliases:
            raise ComposerError(
                None, None, f"more than {self._budget.aliases} aliases", event.start_mark
            )
        size = self._sizes.get(id(target))
        if size is None:
            raise ComposerError(
                None, None, f"alias *{event.anchor} is inside its own anchor", event.start_mark
            )
        values, chars, height = size
        if self._open + height > self._budget.depth:
            raise ComposerError(
                None,
                None,
                f"alias *{event.anchor} would nest deeper than {self._budget.depth} levels",
                event.start_mark,
            )
        self._spend(values, chars, event)

    def _spend(self, values: int, chars: int, event: Any) -> None:
        self._values += values
        self._chars += chars
        if self._values > self._budget.values or self._chars > self._budget.chars:
            raise ComposerError(
                None,
                None,
                f"the document expands (aliases included) to more than {self._budget.values} "
                f"values or {self._budget.chars} characters",
                event.start_mark,
            )

    def _measure(self, node: Node, chars: int) -> tuple[int, int, int]:
        if isinstance(node, ScalarNode):
            return 1, chars, 0
        children: list[Node] = (
            [n for pair in node.value for n in pair]
            if isinstance(node, MappingNode)
            else list(node.value)
        )
        sizes = [self._sizes[id(child)] for child in children]
        return (
            1 + sum(s[0] for s in sizes),
            sum(s[1] for s in sizes),
            1 + max((s[2] for s in sizes), default=0),
        )


if yaml.__with_libyaml__:
    from yaml._yaml import CParser as _Parser  # libyaml's C parser; the composer stays Python
else:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)


class BoundedLoader(
    _BoundedComposer, _Parser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver
):
    """Safe loading; the composer (first in the MRO) shadows the C parser's own composer."""

    def __init__(self, stream: str, budget: YamlBudget) -> None:
        _Parser.__init__(self, stream)
        _BoundedComposer.__init__(self, budget)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)


def duplicate_key(root: Node) -> str | None:
    """``$.path: duplicate key 'k' (line N)`` for the first key given twice in a mapping."""
    seen: set[int] = set()
    stack: list[tuple[Node, str]] = [(root, "$")]
    while stack:
        node, where = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend((child, child_path(where, i)) for i, child in enumerate(node.value))
        elif isinstance(node, MappingNode):
            keys: set[tuple[str, str]] = set()
            for key, value in node.value:
                if not isinstance(key, ScalarNode):
                    continue
                if key.tag != _MERGE_TAG and (key.tag, key.value) in keys:
                    line = key.start_mark.line + 1
                    return f"{where}: duplicate key {clip(repr(key.value))} (line {line})"
                keys.add((key.tag, key.value))
                stack.append((value, child_path(where, str(key.value))))
    return None
