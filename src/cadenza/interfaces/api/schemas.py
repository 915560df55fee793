"""Request and response bodies of the API; separate from storage rows on purpose."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cadenza.application.ports import InstanceRow, StoredDefinition
from cadenza.domain.definition import DefinitionStatus
from cadenza.domain.status import InstanceStatus, TaskStatus

JsonObject = dict[str, Any]
MAX_VERSION = 2**31 - 1  # versions are database INTEGERs


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- auth -----------------------------------------------------------------------------------
class LoginIn(Strict):
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=256)


class RefreshIn(Strict):
    refresh_token: str = Field(min_length=1, max_length=4096)


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int


class MembershipOut(BaseModel):
    id: str
    name: str
    role: str


class UserOut(BaseModel):
    id: str
    username: str
    is_admin: bool
    disabled: bool = False


class MeOut(BaseModel):
    user: UserOut | None
    api_key_id: str | None = None
    workspace_id: str
    role: str
    permissions: list[str]
    workspaces: list[MembershipOut]


# ---- definitions ----------------------------------------------------------------------------
class DocumentIn(Strict):
    document: JsonObject = Field(description="a cadenza/v1 definition")


class SaveIn(DocumentIn):
    publish: bool = Field(default=False, description="publish the saved version at once")


class Problem(BaseModel):
    path: str
    message: str


class ValidationOut(BaseModel):
    valid: bool
    problems: list[Problem]


class VersionOut(BaseModel):
    process_id: str
    version: int
    status: DefinitionStatus
    content_hash: str
    name: str | None
    created_at: float

    @classmethod
    def of(cls, d: StoredDefinition) -> VersionOut:
        name = d.document.get("name")
        return cls(
            process_id=d.process_id,
            version=d.version,
            status=DefinitionStatus(d.status),
            content_hash=d.content_hash,
            name=name if isinstance(name, str) else None,
            created_at=d.created_at,
        )


class DefinitionOut(VersionOut):
    document: JsonObject

    @classmethod
    def of(cls, d: StoredDefinition) -> DefinitionOut:
        return cls(**VersionOut.of(d).model_dump(), document=d.document)


class ChangeOut(BaseModel):
    path: str
    kind: Literal["added", "removed", "changed"]
    before: Any = None
    after: Any = None


class DiffOut(BaseModel):
    process_id: str
    from_version: int
    to_version: int
    changes: list[ChangeOut]


# ---- instances and tasks --------------------------------------------------------------------
class StartIn(Strict):
    process_id: str = Field(min_length=1, max_length=64)
    version: int | None = Field(
        default=None, ge=1, le=MAX_VERSION, description="default: latest published"
    )
    inputs: JsonObject = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=160)


class RedactedOut(BaseModel):
    """One place a stored value was redacted (PII, docs/pii.md): the field, the JSON path in
    it (``$`` for a whole text such as ``error``) and the detectors that matched."""

    field: str
    path: str
    detectors: list[str]


class OffloadedOut(BaseModel):
    """An offloaded value's marker (docs/payloads.md): the whole value is
    ``GET /api/v1/processes/instances/{id}/payloads/{sha256}``."""

    ref: str
    sha256: str
    size: int
    preview: str


class InstanceOut(BaseModel):
    id: str
    process_id: str
    version: int
    status: InstanceStatus
    inputs: JsonObject
    outputs: JsonObject | None
    error: str | None
    parent_instance_id: str | None
    created_at: float
    updated_at: float
    redacted: list[RedactedOut] = Field(
        default_factory=list, description="where inputs, outputs and error were redacted"
    )
    error_payload: OffloadedOut | None = Field(
        default=None,
        description="an error offloaded to the blob store: `error` is its preview, this its "
        "marker (load the whole text from the payload route)",
    )

    @classmethod
    def of(cls, r: InstanceRow) -> InstanceOut:
        return cls(
            id=r.id,
            process_id=r.process_id,
            version=r.version,
            status=InstanceStatus(r.status),
            inputs=r.inputs,
            outputs=r.outputs,
            error=r.error,
            parent_instance_id=r.parent_instance_id,
            created_at=r.created_at,
            updated_at=r.updated_at,
            redacted=[
                RedactedOut(field=column, path=x.path, detectors=list(x.detectors))
                for column, x in r.redacted
            ],
            error_payload=None
            if r.error_payload is None
            else OffloadedOut.model_validate(r.error_payload),
        )


class TaskOut(BaseModel):
    id: str
    instance_id: str
    process_id: str | None = None
    scope: str
    node_id: str
    node_type: str
    status: TaskStatus
    attempt: int
    output: Any = None
    error: str | None = None
    ports: list[str] = Field(default_factory=list)
    detail: JsonObject = Field(default_factory=dict)
    usage: JsonObject | None = None
    leased_to: str | None = None
    created_at: float
    updated_at: float
    redacted: list[RedactedOut] = Field(
        default_factory=list, description="where output, detail and error were redacted"
    )
    error_payload: OffloadedOut | None = Field(
        default=None, description="an offloaded error's marker (`error` is its preview)"
    )

    @classmethod
    def of(cls, row: JsonObject) -> TaskOut:
        return cls.model_validate({k: v for k, v in row.items() if k in cls.model_fields})


class InstanceDetailOut(InstanceOut):
    tasks: list[TaskOut]
    usage: JsonObject


class InstancePage(BaseModel):
    items: list[InstanceOut]
    next_cursor: str | None


class EventOut(BaseModel):
    seq: int
    id: str
    type: str
    occurred_at: float
    data: JsonObject


class CancelIn(Strict):
    reason: str | None = Field(default=None, max_length=500)


class DecisionIn(Strict):
    comment: str | None = Field(default=None, max_length=2000)


class SignalIn(Strict):
    task_id: str = Field(min_length=1, max_length=40)
    payload: JsonObject = Field(default_factory=dict)


class Accepted(BaseModel):
    ok: bool = True
    result: Any = None
