"""Process definitions: save drafts, validate, publish, archive, versions and diffs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from cadenza.application.processes import diff_documents
from cadenza.domain.definition import DefinitionStatus
from cadenza.domain.errors import DefinitionInvalid
from cadenza.interfaces.api.guard import Caller, Svc
from cadenza.interfaces.api.schemas import (
    MAX_VERSION,
    ChangeOut,
    DefinitionOut,
    DiffOut,
    DocumentIn,
    Problem,
    SaveIn,
    ValidationOut,
    VersionOut,
)

router = APIRouter(prefix="/api/v1/processes/definitions", tags=["definitions"])
# bounded: a larger integer does not fit the database's INTEGER (it was a 500)
Version = Annotated[int, Path(ge=1, le=MAX_VERSION)]


@router.get("")
async def list_processes(p: Caller, svc: Svc) -> list[VersionOut]:
    """The newest version of every process in the workspace."""
    return [VersionOut.of(d) for d in await svc.processes.all(p)]


@router.post("", status_code=status.HTTP_201_CREATED)
async def save_definition(body: SaveIn, p: Caller, svc: Svc) -> DefinitionOut:
    """Validate and store a document as a draft version (the same content returns the
    version that has it); with ``publish`` the version is published at once."""
    stored = await svc.processes.save(p, body.document)
    published = DefinitionStatus.PUBLISHED
    if body.publish and stored.status != published:
        stored = await svc.processes.set_status(p, stored.process_id, stored.version, published)
    return DefinitionOut.of(stored)


@router.post("/validate")
async def validate_definition(body: DocumentIn, p: Caller, svc: Svc) -> ValidationOut:
    """Every problem of a document, each with a JSON path; nothing is stored."""
    try:
        await svc.processes.definitions.validate(body.document)
    except DefinitionInvalid as exc:
        problems = [Problem(path=x.path, message=x.message) for x in exc.problems]
        return ValidationOut(valid=False, problems=problems)
    return ValidationOut(valid=True, problems=[])


@router.get("/{process_id}")
async def get_process(process_id: str, p: Caller, svc: Svc) -> DefinitionOut:
    """The newest version, whatever its status."""
    return DefinitionOut.of(await svc.processes.version(p, process_id, None))


@router.delete("/{process_id}")
async def archive_process(process_id: str, p: Caller, svc: Svc) -> list[VersionOut]:
    """Archive every version: no new instances; running ones and the history stay."""
    await svc.processes.archive_all(p, process_id)
    return [VersionOut.of(d) for d in await svc.processes.versions(p, process_id)]


@router.get("/{process_id}/versions")
async def list_versions(process_id: str, p: Caller, svc: Svc) -> list[VersionOut]:
    return [VersionOut.of(d) for d in await svc.processes.versions(p, process_id)]


@router.get("/{process_id}/versions/{version}")
async def get_version(process_id: str, version: Version, p: Caller, svc: Svc) -> DefinitionOut:
    return DefinitionOut.of(await svc.processes.version(p, process_id, version))


@router.post("/{process_id}/versions/{version}/publish")
async def publish_version(process_id: str, version: Version, p: Caller, svc: Svc) -> VersionOut:
    """Make a draft the version new instances start (published versions are immutable)."""
    return VersionOut.of(
        await svc.processes.set_status(p, process_id, version, DefinitionStatus.PUBLISHED)
    )


@router.post("/{process_id}/versions/{version}/archive")
async def archive_version(process_id: str, version: Version, p: Caller, svc: Svc) -> VersionOut:
    archived = DefinitionStatus.ARCHIVED
    return VersionOut.of(await svc.processes.set_status(p, process_id, version, archived))


@router.get("/{process_id}/diff")
async def diff_versions(
    process_id: str,
    p: Caller,
    svc: Svc,
    from_version: int = Query(alias="from", ge=1, le=MAX_VERSION),
    to_version: int = Query(alias="to", ge=1, le=MAX_VERSION),
) -> DiffOut:
    """What changed between two versions, by JSON path (nodes and edges matched by id)."""
    a = await svc.processes.version(p, process_id, from_version)
    b = await svc.processes.version(p, process_id, to_version)
    changes = diff_documents(a.document, b.document)
    return DiffOut(
        process_id=process_id,
        from_version=from_version,
        to_version=to_version,
        changes=[ChangeOut(**c.__dict__) for c in changes],
    )
