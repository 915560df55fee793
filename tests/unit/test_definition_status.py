"""The lifecycle of a process version as a transition table."""

from __future__ import annotations

from cadenza.domain.definition import DEFINITION_TRANSITIONS, DefinitionStatus

D = DefinitionStatus


def test_a_version_goes_draft_published_archived_and_never_back() -> None:
    table = DEFINITION_TRANSITIONS
    assert table == {
        D.DRAFT: frozenset({D.PUBLISHED, D.ARCHIVED}),
        D.PUBLISHED: frozenset({D.ARCHIVED}),
        D.ARCHIVED: frozenset(),
    }


def test_no_status_lists_itself() -> None:
    assert [s for s in D if s in DEFINITION_TRANSITIONS[s]] == []
