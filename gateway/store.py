"""The gateway's own database: cases, their steps (the saga's durable state), event cursors,
Idempotency-Key records, feedback and the notifications sent. No department's tables are here."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.common.audit import AuditMixin
from services.common.db import NAMING, BigIntPK, JsonType, UTCDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_no: Mapped[str] = mapped_column(String(32), unique=True)
    matter: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(32), index=True)
    query_code_hash: Mapped[str] = mapped_column(String(64))
    applicant_key: Mapped[str] = mapped_column(String(64), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JsonType)
    # material kind -> {"sha256", "media_type", "size_bytes"}
    materials: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    outcome: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    submitted_on: Mapped[dt.date] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=0)
    # Added for who-may-see-what, the counter and notifications (nullable: older databases gain them empty).
    hall: Mapped[str | None] = mapped_column(String(6), nullable=True, index=True)  # region code
    opened_by: Mapped[str | None] = mapped_column(String(64), nullable=True)  # staff subject at the counter
    checked_materials: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    contact: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)  # phone/email/language
    notified_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Set whenever `state` changes and cleared once the notifier has dealt with it: the notifier reads
    # this index, never every case.
    notify_due: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    steps: Mapped[list[CaseStep]] = relationship(
        back_populates="case", lazy="raise", order_by="CaseStep.position", cascade="all, delete-orphan"
    )

    # Every ORM write is guarded by the version it read (UPDATE ... WHERE version = :read): a writer
    # that lost a race gets StaleDataError and starts again from the database.
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (declared by DeclarativeBase)


class CaseStep(Base):
    __tablename__ = "case_steps"
    __table_args__ = (
        UniqueConstraint("case_id", "step_key"),
        Index("ix_case_steps_department_resource", "department", "resource_id"),
        # The saga's due query: ready steps by retry time (a backlog of waiting steps is never read).
        Index("ix_case_steps_due", "ready", "next_attempt_at"),
        # Lease recovery: claimed steps whose runner died.
        Index("ix_case_steps_lease", "lease_until"),
        Index("ix_case_steps_request", "department", "request_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    step_key: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    department: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    depends_on: Mapped[list[str]] = mapped_column(JsonType, default=list)
    starts_when: Mapped[str] = mapped_column(String(16), default="approved")
    materials: Mapped[list[str]] = mapped_column(JsonType, default=list)  # the kinds this step receives
    state: Mapped[str] = mapped_column(String(24))
    request_id: Mapped[str] = mapped_column(String(36), unique=True)
    resource_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    department_state: Mapped[str] = mapped_column(String(40), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reason: Mapped[str] = mapped_column(String(80), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    statutory_deadline: Mapped[dt.date | None] = mapped_column(nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=0)
    # Whether the runner may take the step up once `next_attempt_at` comes: PENDING with every dependency
    # satisfied, or COMPENSATING with no later step still compensating, and not claimed. Kept by the
    # runner whenever a step of the case changes (see gateway.saga.model.ready_steps).
    ready: Mapped[bool] = mapped_column(Boolean, default=False)

    case: Mapped[Case] = relationship(back_populates="steps", lazy="raise")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (declared by DeclarativeBase)


class ParkedEvent(Base):
    """A department event about a resource no step holds yet (e.g. the answer to the create call was lost
    and the department decided before the retry): kept, and applied when a step binds that resource."""

    __tablename__ = "parked_events"
    __table_args__ = (
        UniqueConstraint("department", "sequence"),
        Index("ix_parked_events_resource", "department", "aggregate_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    department: Mapped[str] = mapped_column(String(16))
    sequence: Mapped[int] = mapped_column(BigIntPK)
    event_type: Mapped[str] = mapped_column(String(64))
    aggregate_id: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(64), default="")
    # what the event carries (results, a rejection's reasons), applied with it when its step binds
    data: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)


class EventCursor(Base):
    """How far the gateways have applied one department's events, and which gateway may consume them
    now (a lease, so that with several gateways each event is applied once)."""

    __tablename__ = "event_cursors"

    department: Mapped[str] = mapped_column(String(16), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigIntPK, default=0)
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    body_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # RUNNING | DONE
    status: Mapped[int] = mapped_column(Integer, default=0)
    response: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    # The case this request opened, bound in the same transaction as the case itself: a request whose
    # gateway died before answering can still be answered with its case.
    case_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class Material(Base):
    """A stored document (its content is a file named by its SHA-256)."""

    __tablename__ = "materials"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigIntPK)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Feedback(Base):
    """好差评: one rating of a completed case by its applicant, and staff replies."""

    __tablename__ = "feedback"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    matter: Mapped[str] = mapped_column(String(64), index=True)
    hall: Mapped[str | None] = mapped_column(String(6), nullable=True)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    flagged: Mapped[bool] = mapped_column(Boolean, default=False, index=True)  # rating <= 2: follow up
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # [{"by": subject, "role": role, "text": ..., "at": iso}]
    replies: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)


class Notification(Base):
    """A message sent to an applicant at a milestone of their case (the default sender's record)."""

    __tablename__ = "notifications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    milestone: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))  # sms | email | record
    recipient: Mapped[str] = mapped_column(String(200))  # masked
    language: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class AuditEntry(AuditMixin, Base):
    """The gateway's audit trail (append-only, hash-chained; see services/common/audit.py)."""

    __tablename__ = "audit_log"


class LookupBucket(Base):
    """A token bucket of public lookups (by query code), per client address, shared by every gateway
    replica: a row in the database all replicas use, updated under a row lock (gateway/ratelimit.py)."""

    __tablename__ = "lookup_buckets"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)


class CodeFailures(Base):
    """Wrong query codes given for one case number; past the limit the number is locked for a while."""

    __tablename__ = "query_code_failures"

    case_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
