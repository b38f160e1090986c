"""The identity department's tables and its repository.

Rows are mapped to and from the frozen domain objects of ``services.identity.domain`` here and nowhere
else. One open application per person is enforced by the domain and, race-free, by the database:
``card_applications.open_id_number`` holds the ID number while the application is open and NULL once it
is closed, under a plain unique constraint (NULLs never collide on SQLite or PostgreSQL), so of two
concurrent applications of one person exactly one commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    false,
    insert,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import Select

from services.common.audit import AuditMixin
from services.common.db import NAMING, JsonType, UnitOfWork, UTCDateTime
from services.common.errors import ValidationCollector
from services.common.events import DomainEvent
from services.common.idempotency import IdempotencyMixin
from services.common.outbox import EventFeed, OutboxMixin
from services.common.pages import decode_page_token, encode_page_token
from services.identity.domain import (
    ApplicationKind,
    ApplicationState,
    Card,
    CardApplication,
    CardStatus,
    FeeReduction,
    FoundCard,
    FoundCardStatus,
    LossReport,
    RenewalReason,
    ResidencePermit,
    TemporaryCard,
    aggregate_id,
)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class OutboxEvent(OutboxMixin, Base):
    __tablename__ = "outbox"


class IdempotencyRecord(IdempotencyMixin, Base):
    __tablename__ = "idempotency"


class AuditEntry(AuditMixin, Base):
    __tablename__ = "audit_log"


class Timestamps:
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class CardApplicationRow(Timestamps, Base):
    __tablename__ = "card_applications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    # The ID number while the application is open, NULL once closed: one open application per person.
    open_id_number: Mapped[str | None] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    renewal_reason: Mapped[str | None] = mapped_column(String(20))
    hukou_province_code: Mapped[str] = mapped_column(String(2))
    hukou_region_code: Mapped[str] = mapped_column(String(6))
    accepting_region_code: Mapped[str] = mapped_column(String(6))
    cross_province: Mapped[bool] = mapped_column(Boolean)
    application_date: Mapped[dt.date] = mapped_column(Date)
    fee_reduction: Mapped[str] = mapped_column(String(30))
    fee_fen: Mapped[int] = mapped_column(BigInteger)
    statutory_deadline: Mapped[dt.date] = mapped_column(Date)
    required_materials: Mapped[list[str]] = mapped_column(JsonType)
    residence_permit_number: Mapped[str | None] = mapped_column(String(40))
    residence_permit_valid_until: Mapped[dt.date | None] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(20))
    rejection_reason: Mapped[str] = mapped_column(Text, default="")
    cancellation_reason: Mapped[str] = mapped_column(Text, default="")
    card_number: Mapped[str] = mapped_column(String(32), default="")
    history: Mapped[list[list[str]]] = mapped_column(JsonType)
    # A replacement's loss report (loss_reports.id): filed with it, or earlier on its own.
    loss_report_id: Mapped[str | None] = mapped_column(String(36))
    loss_already_reported: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    rejection_code: Mapped[str] = mapped_column(String(40), default="", server_default="")


class CardRow(Timestamps, Base):
    __tablename__ = "cards"

    card_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_until: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))
    application_id: Mapped[str] = mapped_column(String(36))
    # The hukou address in the card's machine-readable data ("" / NULL until one is recorded).
    address_region_code: Mapped[str] = mapped_column(String(6), default="", server_default="")
    address: Mapped[str] = mapped_column(String(200), default="", server_default="")
    address_recorded_on: Mapped[dt.date | None] = mapped_column(Date)
    # The day the card was cancelled on its holder's death.
    cancelled_on: Mapped[dt.date | None] = mapped_column(Date)


class LossReportRow(Base):
    __tablename__ = "loss_reports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    card_number: Mapped[str] = mapped_column(String(32), index=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    station_region_code: Mapped[str] = mapped_column(String(6))
    reported_on: Mapped[dt.date] = mapped_column(Date)
    inside_hukou_area: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # The card application it was filed with (NULL: filed on its own) and the day it was withdrawn with
    # that application (NULL while it stands).
    application_id: Mapped[str | None] = mapped_column(String(36), index=True)
    withdrawn_on: Mapped[dt.date | None] = mapped_column(Date)


class EventCursorRow(Base):
    """How far this department has applied another department's event stream (e.g. "residence")."""

    __tablename__ = "event_cursors"

    source: Mapped[str] = mapped_column(String(40), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class FoundCardRow(Timestamps, Base):
    __tablename__ = "found_cards"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    card_number: Mapped[str] = mapped_column(String(32), index=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    station_region_code: Mapped[str] = mapped_column(String(6))
    found_place: Mapped[str] = mapped_column(Text)
    found_on: Mapped[dt.date] = mapped_column(Date)
    registered_on: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))
    notify_owner: Mapped[bool] = mapped_column(Boolean)
    claimant_photo_ref: Mapped[str] = mapped_column(String(128), default="")
    closed_on: Mapped[dt.date | None] = mapped_column(Date)


class TemporaryCardRow(Timestamps, Base):
    __tablename__ = "temporary_cards"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    # One temporary card per application in progress.
    application_id: Mapped[str] = mapped_column(String(36), unique=True)
    station_region_code: Mapped[str] = mapped_column(String(6))
    applied_on: Mapped[dt.date] = mapped_column(Date)
    issue_by: Mapped[dt.date] = mapped_column(Date)
    fee_fen: Mapped[int] = mapped_column(BigInteger)
    issued_on: Mapped[dt.date | None] = mapped_column(Date)
    valid_until: Mapped[dt.date | None] = mapped_column(Date)


# -- pages -------------------------------------------------------------------------------------------------

Row = TypeVar("Row", CardApplicationRow, CardRow, FoundCardRow)
PAGE_KEY = (dt.datetime, str)  # newest first: (created_at, the row's key)


async def _page(
    session: AsyncSession, stmt: Select[tuple[Row]], model: type[Row], key: Any, size: int, token: str
) -> tuple[list[Row], str]:
    """Newest first by (created_at, key), keyset-paginated with an opaque token."""
    errors = ValidationCollector()
    after = decode_page_token(token, PAGE_KEY, errors)
    errors.raise_if_any()
    if after is not None:
        created_at, last = after
        stmt = stmt.where(
            or_(model.created_at < created_at, and_(model.created_at == created_at, key < last))
        )
    rows = list(
        (await session.scalars(stmt.order_by(model.created_at.desc(), key.desc()).limit(size + 1))).all()
    )
    if len(rows) <= size:
        return rows, ""
    rows = rows[:size]
    last_row = rows[-1]
    return rows, encode_page_token((last_row.created_at, getattr(last_row, key.key)))


# -- mapping -----------------------------------------------------------------------------------------------


def _loss_report(row: LossReportRow) -> LossReport:
    return LossReport(
        row.card_number,
        row.id_number,
        row.station_region_code,
        row.reported_on,
        row.inside_hukou_area,
        id=row.id,
        application_id=row.application_id or "",
        withdrawn_on=row.withdrawn_on,
    )


def _application(row: CardApplicationRow, loss_report: LossReport | None = None) -> CardApplication:
    permit = None
    if row.residence_permit_number is not None and row.residence_permit_valid_until is not None:
        permit = ResidencePermit(row.residence_permit_number, row.residence_permit_valid_until)
    return CardApplication(
        id=row.id,
        id_number=row.id_number,
        name=row.name,
        kind=ApplicationKind(row.kind),
        renewal_reason=RenewalReason(row.renewal_reason) if row.renewal_reason else None,
        hukou_province_code=row.hukou_province_code,
        hukou_region_code=row.hukou_region_code,
        accepting_region_code=row.accepting_region_code,
        cross_province=row.cross_province,
        application_date=row.application_date,
        fee_reduction=FeeReduction(row.fee_reduction),
        fee_fen=row.fee_fen,
        statutory_deadline=row.statutory_deadline,
        required_materials=tuple(row.required_materials),
        residence_permit=permit,
        state=ApplicationState(row.state),
        rejection_reason=row.rejection_reason,
        cancellation_reason=row.cancellation_reason,
        card_number=row.card_number,
        history=tuple((ApplicationState(s), dt.date.fromisoformat(on)) for s, on in row.history),
        loss_report=loss_report,
        loss_already_reported=row.loss_already_reported,
        rejection_code=row.rejection_code,
    )


def _application_values(app: CardApplication) -> dict[str, Any]:
    """The columns of an application's row, but its id and times."""
    return {
        "id_number": app.id_number,
        "open_id_number": app.id_number if app.is_open else None,
        "name": app.name,
        "kind": app.kind.value,
        "renewal_reason": app.renewal_reason.value if app.renewal_reason else None,
        "hukou_province_code": app.hukou_province_code,
        "hukou_region_code": app.hukou_region_code,
        "accepting_region_code": app.accepting_region_code,
        "cross_province": app.cross_province,
        "application_date": app.application_date,
        "fee_reduction": app.fee_reduction.value,
        "fee_fen": app.fee_fen,
        "statutory_deadline": app.statutory_deadline,
        "required_materials": list(app.required_materials),
        "residence_permit_number": app.residence_permit.number if app.residence_permit else None,
        "residence_permit_valid_until": app.residence_permit.valid_until if app.residence_permit else None,
        "state": app.state.value,
        "rejection_reason": app.rejection_reason,
        "cancellation_reason": app.cancellation_reason,
        "card_number": app.card_number,
        "history": [[s.value, on.isoformat()] for s, on in app.history],
        "loss_report_id": app.loss_report.id if app.loss_report else None,
        "loss_already_reported": app.loss_already_reported,
        "rejection_code": app.rejection_code,
    }


def _fill_application(row: CardApplicationRow, app: CardApplication) -> None:
    for key, value in _application_values(app).items():
        setattr(row, key, value)


def _card(row: CardRow) -> Card:
    return Card(
        row.card_number,
        row.id_number,
        row.valid_from,
        row.valid_until,
        CardStatus(row.status),
        row.application_id,
        row.address_region_code,
        row.address,
        row.address_recorded_on,
        row.cancelled_on,
    )


def _found(row: FoundCardRow) -> FoundCard:
    return FoundCard(
        id=row.id,
        card_number=row.card_number,
        id_number=row.id_number,
        station_region_code=row.station_region_code,
        found_place=row.found_place,
        found_on=row.found_on,
        registered_on=row.registered_on,
        status=FoundCardStatus(row.status),
        notify_owner=row.notify_owner,
        claimant_photo_ref=row.claimant_photo_ref,
        closed_on=row.closed_on,
    )


def _temporary(row: TemporaryCardRow) -> TemporaryCard:
    return TemporaryCard(
        id_number=row.id_number,
        application_id=row.application_id,
        applied_on=row.applied_on,
        issue_by=row.issue_by,
        fee_fen=row.fee_fen,
        issued_on=row.issued_on,
        valid_until=row.valid_until,
    )


# -- the applicant's standing ------------------------------------------------------------------------------

_APPLICATIONS: Table = CardApplicationRow.__table__  # type: ignore[assignment]
_CARDS: Table = CardRow.__table__  # type: ignore[assignment]
_PERSON = select(cast(bindparam("id_number"), String(18)).label("id_number")).subquery("person")
_CURRENT_CARD = (  # the person's last issued card (as `current_card`)
    select(_CARDS.c.card_number)
    .where(_CARDS.c.id_number == _PERSON.c.id_number)
    .order_by(_CARDS.c.created_at.desc(), _CARDS.c.card_number.desc())
    .limit(1)
    .correlate(_PERSON)
    .scalar_subquery()
)
# One statement: the person's open application and current card (either may be missing), a few Core
# columns labelled by table, no ORM objects.
_APPLICANT = (
    select(
        *(c.label(f"a_{c.key}") for c in _APPLICATIONS.c),
        *(c.label(f"c_{c.key}") for c in _CARDS.c),
    )
    .select_from(_PERSON)
    .outerjoin(_APPLICATIONS, _APPLICATIONS.c.open_id_number == _PERSON.c.id_number)
    .outerjoin(_CARDS, _CARDS.c.card_number == _CURRENT_CARD)
)


def _columns(row: Any, prefix: str) -> Any:
    """The columns of one table in a labelled row, as attributes (the mappers above read attributes)."""
    return SimpleNamespace(**{k[len(prefix) :]: v for k, v in row._mapping.items() if k.startswith(prefix)})


# -- the repository ----------------------------------------------------------------------------------------


class IdentityRepository:
    """The department's records, in one unit of work's session. Methods speak the domain's language;
    `now` stamps created/updated times."""

    def __init__(self, session: AsyncSession, now: dt.datetime) -> None:
        self.session = session
        self.now = now

    # applications

    async def _with_report(self, row: CardApplicationRow) -> CardApplication:
        report = None
        if row.loss_report_id is not None:
            report_row = await self.session.get(LossReportRow, row.loss_report_id)
            report = _loss_report(report_row) if report_row else None
        return _application(row, report)

    async def get_application(self, application_id: str) -> CardApplication | None:
        row = await self.session.get(CardApplicationRow, application_id)
        return await self._with_report(row) if row else None

    async def get_open_application_for(self, id_number: str) -> CardApplication | None:
        stmt = select(CardApplicationRow).where(CardApplicationRow.open_id_number == id_number)
        row = (await self.session.scalars(stmt)).first()
        return await self._with_report(row) if row else None

    async def application_times(self, application_id: str) -> tuple[dt.datetime, dt.datetime] | None:
        row = await self.session.get(CardApplicationRow, application_id)
        return (row.created_at, row.updated_at) if row else None

    async def applicant(self, id_number: str) -> tuple[CardApplication | None, Card | None]:
        """The person's open application and current card (as `get_open_application_for` and
        `current_card`), read in one statement."""
        row = (await self.session.execute(_APPLICANT, {"id_number": id_number})).one()
        open_row, card_row = _columns(row, "a_"), _columns(row, "c_")
        open_app = None
        if open_row.id is not None:
            report = None
            if open_row.loss_report_id is not None:
                report_row = await self.session.get(LossReportRow, open_row.loss_report_id)
                report = _loss_report(report_row) if report_row else None
            open_app = _application(open_row, report)
        return open_app, _card(card_row) if card_row.card_number is not None else None

    async def add_application(self, app: CardApplication) -> tuple[dt.datetime, dt.datetime]:
        """Insert a new application (no read first, one Core statement, written now: a unique rule it
        breaks raises here); answers (created_at, updated_at)."""
        values = {**_application_values(app), "id": app.id, "created_at": self.now, "updated_at": self.now}
        await self.session.execute(insert(_APPLICATIONS).values(values))
        return self.now, self.now

    async def save_application(self, app: CardApplication) -> tuple[dt.datetime, dt.datetime]:
        """Insert or update; answers (created_at, updated_at)."""
        row = await self.session.get(CardApplicationRow, app.id)
        if row is None:
            row = CardApplicationRow(id=app.id, created_at=self.now)
            self.session.add(row)
        _fill_application(row, app)
        row.updated_at = self.now
        return row.created_at, row.updated_at

    async def list_applications(
        self, id_number: str | None, size: int, token: str
    ) -> tuple[list[tuple[CardApplication, dt.datetime, dt.datetime]], str]:
        stmt = select(CardApplicationRow)
        if id_number:
            stmt = stmt.where(CardApplicationRow.id_number == id_number)
        rows, next_token = await _page(
            self.session, stmt, CardApplicationRow, CardApplicationRow.id, size, token
        )
        return [(await self._with_report(r), r.created_at, r.updated_at) for r in rows], next_token

    # cards

    async def get_card(self, card_number: str) -> Card | None:
        row = await self.session.get(CardRow, card_number)
        return _card(row) if row else None

    async def current_card(self, id_number: str) -> Card | None:
        """The person's last issued card, whatever its status."""
        stmt = (
            select(CardRow)
            .where(CardRow.id_number == id_number)
            .order_by(CardRow.created_at.desc(), CardRow.card_number.desc())
            .limit(1)
        )
        row = (await self.session.scalars(stmt)).first()
        return _card(row) if row else None

    async def save_card(self, card: Card) -> None:
        row = await self.session.get(CardRow, card.card_number)
        if row is None:
            row = CardRow(card_number=card.card_number, created_at=self.now)
            self.session.add(row)
        row.id_number = card.id_number
        row.valid_from = card.valid_from
        row.valid_until = card.valid_until
        row.status = card.status.value
        row.application_id = card.application_id
        row.address_region_code = card.address_region_code
        row.address = card.address
        row.address_recorded_on = card.address_recorded_on
        row.cancelled_on = card.cancelled_on
        row.updated_at = self.now

    async def list_cards(self, id_number: str, size: int, token: str) -> tuple[list[Card], str]:
        stmt = select(CardRow).where(CardRow.id_number == id_number)
        rows, next_token = await _page(self.session, stmt, CardRow, CardRow.card_number, size, token)
        return [_card(r) for r in rows], next_token

    # loss reports

    async def add_loss_report(self, report_id: str, report: LossReport) -> None:
        self.session.add(
            LossReportRow(
                id=report_id,
                card_number=report.card_number,
                id_number=report.id_number,
                station_region_code=report.station_region_code,
                reported_on=report.reported_on,
                inside_hukou_area=report.inside_hukou_area,
                created_at=self.now,
                application_id=report.application_id or None,
                withdrawn_on=report.withdrawn_on,
            )
        )

    async def withdraw_loss_report(self, report: LossReport) -> None:
        row = await self.session.get(LossReportRow, report.id)
        if row is not None:
            row.withdrawn_on = report.withdrawn_on

    async def standing_loss_report(self, card_number: str) -> LossReport | None:
        """The card's latest loss report that has not been withdrawn."""
        stmt = (
            select(LossReportRow)
            .where(LossReportRow.card_number == card_number, LossReportRow.withdrawn_on.is_(None))
            .order_by(LossReportRow.created_at.desc(), LossReportRow.id.desc())
            .limit(1)
        )
        row = (await self.session.scalars(stmt)).first()
        return _loss_report(row) if row else None

    async def cards_of(self, id_number: str) -> list[Card]:
        """Every card of a person (for the register's own housekeeping, e.g. cancellation on death)."""
        stmt = select(CardRow).where(CardRow.id_number == id_number)
        return [_card(r) for r in (await self.session.scalars(stmt)).all()]

    # requests answered (services.common.idempotency)

    async def answered(self, request_id: str) -> bool:
        """Whether this request_id already has a stored answer (then nobody else need be asked)."""
        stmt = select(IdempotencyRecord.request_id).where(IdempotencyRecord.request_id == request_id)
        return await self.session.scalar(stmt) is not None

    # other departments' event streams

    async def cursor(self, source: str) -> int:
        row = await self.session.get(EventCursorRow, source)
        return row.sequence if row else 0

    async def advance_cursor(self, source: str, sequence: int) -> None:
        row = await self.session.get(EventCursorRow, source)
        if row is None:
            self.session.add(EventCursorRow(source=source, sequence=sequence, updated_at=self.now))
        elif sequence > row.sequence:
            row.sequence = sequence
            row.updated_at = self.now

    # found cards

    async def get_found_card(self, found_id: str) -> FoundCard | None:
        row = await self.session.get(FoundCardRow, found_id)
        return _found(row) if row else None

    async def save_found_card(self, found: FoundCard) -> None:
        row = await self.session.get(FoundCardRow, found.id)
        if row is None:
            row = FoundCardRow(id=found.id, created_at=self.now)
            self.session.add(row)
        row.card_number = found.card_number
        row.id_number = found.id_number
        row.station_region_code = found.station_region_code
        row.found_place = found.found_place
        row.found_on = found.found_on
        row.registered_on = found.registered_on
        row.status = found.status.value
        row.notify_owner = found.notify_owner
        row.claimant_photo_ref = found.claimant_photo_ref
        row.closed_on = found.closed_on
        row.updated_at = self.now

    async def found_cards_of(self, id_number: str, size: int, token: str) -> tuple[list[FoundCard], str]:
        stmt = select(FoundCardRow).where(FoundCardRow.id_number == id_number)
        rows, next_token = await _page(self.session, stmt, FoundCardRow, FoundCardRow.id, size, token)
        return [_found(r) for r in rows], next_token

    # temporary cards

    async def get_temporary_card(self, temporary_id: str) -> tuple[TemporaryCard, str] | None:
        """The card and its issuing station's region code."""
        row = await self.session.get(TemporaryCardRow, temporary_id)
        return (_temporary(row), row.station_region_code) if row else None

    async def temporary_card_for_application(self, application_id: str) -> str | None:
        stmt = select(TemporaryCardRow.id).where(TemporaryCardRow.application_id == application_id)
        return (await self.session.scalars(stmt)).first()

    async def add_temporary_card(
        self, temporary_id: str, card: TemporaryCard, station_region_code: str
    ) -> None:
        self.session.add(
            TemporaryCardRow(
                id=temporary_id,
                id_number=card.id_number,
                application_id=card.application_id,
                station_region_code=station_region_code,
                applied_on=card.applied_on,
                issue_by=card.issue_by,
                fee_fen=card.fee_fen,
                issued_on=card.issued_on,
                valid_until=card.valid_until,
                created_at=self.now,
                updated_at=self.now,
            )
        )


class IdentityWork:
    """One unit of work as identity's use cases see it (``handlers.Work``): the repository in its session
    and its outbox. Every event is written with the request_id that caused it."""

    def __init__(self, uow: UnitOfWork, feed: EventFeed, now: dt.datetime, request_id: str | None) -> None:
        self.uow = uow
        self.records = IdentityRepository(uow.session, now)
        self._feed = feed
        self._now = now
        self._request_id = request_id

    async def emit(self, events: Iterable[DomainEvent]) -> None:
        for event in events:
            await self._feed.record(
                self.uow,
                event.type,
                aggregate_id(event),
                event.payload(),
                occurred_at=self._now,
                request_id=self._request_id,
            )


__all__: Sequence[str] = [
    "Base",
    "CardApplicationRow",
    "CardRow",
    "EventCursorRow",
    "FoundCardRow",
    "IdempotencyRecord",
    "IdentityRepository",
    "IdentityWork",
    "LossReportRow",
    "OutboxEvent",
    "TemporaryCardRow",
]
