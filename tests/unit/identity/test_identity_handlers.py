"""Identity's service layer (services/identity/handlers.py) over fake repositories: what each use case
loads, saves and publishes, and that a refusal leaves nothing stored or published."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from services.common.clock import Clock
from services.common.errors import AlreadyExists, FailedPrecondition, NotFound
from services.common.events import DomainEvent
from services.common.idnumber import build_id_number, require_id_number
from services.identity import domain as d
from services.identity.handlers import (
    CANCELLATION_REASON,
    REGISTER,
    ApplicationRecord,
    HukouAnswer,
    IdentityHandlers,
)
from services.identity.policy import default_policy

TODAY = dt.date(2016, 9, 15)
NOW = dt.datetime(2016, 9, 15, 1, 0, tzinfo=dt.UTC)
YOUNG = build_id_number("310104", dt.date(2000, 5, 1), 11)  # 16: first card
ADULT = build_id_number("310104", dt.date(1970, 3, 2), 22)
OTHER = build_id_number("310104", dt.date(1980, 6, 6), 33)
HERE = "310104"
ELSEWHERE = "310105"


# -- fakes ------------------------------------------------------------------------------------------------


@dataclass
class FakeRecords:
    """The repository in memory (handlers.Records)."""

    applications: dict[str, d.CardApplication] = field(default_factory=dict)
    created: dict[str, dt.datetime] = field(default_factory=dict)
    cards: dict[str, d.Card] = field(default_factory=dict)
    loss_reports: dict[str, d.LossReport] = field(default_factory=dict)
    found: dict[str, d.FoundCard] = field(default_factory=dict)
    temporary: dict[str, tuple[d.TemporaryCard, str]] = field(default_factory=dict)
    cursors: dict[str, int] = field(default_factory=dict)

    async def get_application(self, application_id: str) -> d.CardApplication | None:
        return self.applications.get(application_id)

    async def get_open_application_for(self, id_number: str) -> d.CardApplication | None:
        return next((a for a in self.applications.values() if a.id_number == id_number and a.is_open), None)

    async def application_times(self, application_id: str) -> tuple[dt.datetime, dt.datetime] | None:
        return (self.created[application_id], NOW) if application_id in self.created else None

    async def applicant(self, id_number: str) -> tuple[d.CardApplication | None, d.Card | None]:
        return await self.get_open_application_for(id_number), await self.current_card(id_number)

    async def add_application(self, app: d.CardApplication) -> tuple[dt.datetime, dt.datetime]:
        assert app.id not in self.applications
        self.applications[app.id] = app
        self.created[app.id] = NOW
        return NOW, NOW

    async def save_application(self, app: d.CardApplication) -> tuple[dt.datetime, dt.datetime]:
        self.applications[app.id] = app
        self.created.setdefault(app.id, NOW)
        return self.created[app.id], NOW

    async def list_applications(
        self, id_number: str | None, size: int, token: str
    ) -> tuple[list[tuple[d.CardApplication, dt.datetime, dt.datetime]], str]:
        apps = [a for a in self.applications.values() if id_number in (None, a.id_number)]
        return [(a, self.created[a.id], NOW) for a in apps[:size]], ""

    async def get_card(self, card_number: str) -> d.Card | None:
        return self.cards.get(card_number)

    async def current_card(self, id_number: str) -> d.Card | None:
        return next((c for c in reversed(self.cards.values()) if c.id_number == id_number), None)

    async def cards_of(self, id_number: str) -> list[d.Card]:
        return [c for c in self.cards.values() if c.id_number == id_number]

    async def save_card(self, card: d.Card) -> None:
        self.cards[card.card_number] = card

    async def list_cards(self, id_number: str, size: int, token: str) -> tuple[list[d.Card], str]:
        return (await self.cards_of(id_number))[:size], ""

    async def add_loss_report(self, report_id: str, report: d.LossReport) -> None:
        self.loss_reports[report_id] = replace(report, id=report_id)

    async def withdraw_loss_report(self, report: d.LossReport) -> None:
        self.loss_reports[report.id] = report

    async def standing_loss_report(self, card_number: str) -> d.LossReport | None:
        reports = [r for r in self.loss_reports.values() if r.card_number == card_number and r.standing]
        return reports[-1] if reports else None

    async def get_found_card(self, found_id: str) -> d.FoundCard | None:
        return self.found.get(found_id)

    async def save_found_card(self, found: d.FoundCard) -> None:
        self.found[found.id] = found

    async def found_cards_of(self, id_number: str, size: int, token: str) -> tuple[list[d.FoundCard], str]:
        return [f for f in self.found.values() if f.id_number == id_number][:size], ""

    async def get_temporary_card(self, temporary_id: str) -> tuple[d.TemporaryCard, str] | None:
        return self.temporary.get(temporary_id)

    async def temporary_card_for_application(self, application_id: str) -> str | None:
        return next((k for k, (c, _) in self.temporary.items() if c.application_id == application_id), None)

    async def add_temporary_card(
        self, temporary_id: str, card: d.TemporaryCard, station_region_code: str
    ) -> None:
        self.temporary[temporary_id] = (card, station_region_code)

    async def cursor(self, source: str) -> int:
        return self.cursors.get(source, 0)

    async def advance_cursor(self, source: str, sequence: int) -> None:
        self.cursors[source] = max(sequence, self.cursors.get(source, 0))


@dataclass
class FakeWork:
    """A unit of work (handlers.Work): the fake records and the outbox as a list of
    (type, aggregate id, payload)."""

    records: FakeRecords = field(default_factory=FakeRecords)
    outbox: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    async def emit(self, events: Iterable[DomainEvent]) -> None:
        self.outbox.extend((e.type, d.aggregate_id(e), e.payload()) for e in events)

    @property
    def types(self) -> list[str]:
        return [t for t, _, _ in self.outbox]


def hukou(
    region: str = HERE, *, found: bool = True, name_matches: bool = True, status: str = "REGISTERED"
) -> Any:
    asked: list[int] = []

    async def answer() -> d.HukouRecord:
        asked.append(1)
        return d.HukouRecord(found, name_matches, status, region[:2], region)

    answer.asked = asked  # type: ignore[attr-defined]
    return answer


@pytest.fixture
def handlers() -> IdentityHandlers:
    ids = (f"id-{n}" for n in itertools.count(1))
    numbers = (f"CARD{n:04d}" for n in itertools.count(1))
    return IdentityHandlers(
        default_policy(), Clock(TODAY), ids=lambda: next(ids), card_numbers=lambda: next(numbers)
    )


@pytest.fixture
def work() -> FakeWork:
    return FakeWork()


def card(number: str = "OLD1", id_number: str = ADULT, **changes: Any) -> d.Card:
    return replace(d.Card(number, id_number, dt.date(2006, 1, 1), dt.date(2026, 1, 1)), **changes)


async def first_issue(
    handlers: IdentityHandlers, work: FakeWork, id_number: str = YOUNG
) -> ApplicationRecord:
    return await handlers.create_application(
        work,
        id_number=require_id_number(id_number, "id_number", TODAY),
        name="沪小明",
        kind=d.ApplicationKind.FIRST_ISSUE,
        renewal_reason=None,
        accepting_region_code=HERE,
        fee_reduction=d.FeeReduction.NONE,
        residence_permit=None,
        report_loss=False,
        require_cross_province=False,
        hukou=hukou(),
    )


async def replacement(handlers: IdentityHandlers, work: FakeWork, *, report_loss: bool) -> ApplicationRecord:
    return await handlers.create_application(
        work,
        id_number=require_id_number(ADULT, "id_number", TODAY),
        name="沪大芳",
        kind=d.ApplicationKind.REPLACEMENT,
        renewal_reason=None,
        accepting_region_code=HERE,
        fee_reduction=d.FeeReduction.NONE,
        residence_permit=None,
        report_loss=report_loss,
        require_cross_province=False,
        hukou=hukou(),
    )


async def to_state(handlers: IdentityHandlers, work: FakeWork, app_id: str, state: str) -> None:
    steps = {"APPROVED": 1, "CARD_PRODUCED": 2, "READY_FOR_PICKUP": 3}[state]
    moves = [handlers.approve, handlers.mark_produced, handlers.mark_ready]
    for move in moves[:steps]:
        await move(work, app_id)


# -- applications -----------------------------------------------------------------------------------------


async def test_a_first_issue_is_stored_accepted_and_announced(
    handlers: IdentityHandlers, work: FakeWork
) -> None:
    stored = await first_issue(handlers, work)
    app = stored.application
    assert work.records.applications[app.id] == app
    assert app.state is d.ApplicationState.ACCEPTED
    assert (stored.created, stored.updated) == (NOW, NOW)
    assert work.outbox == [
        (
            "CardApplicationSubmitted",
            app.id,
            {
                "application_id": app.id,
                "id_number": YOUNG,
                "kind": "FIRST_ISSUE",
                "state": "ACCEPTED",
                "cross_province": False,
                "fee_fen": app.fee_fen,
                "statutory_deadline": "2016-11-14",
            },
        )
    ]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (hukou(found=False, name_matches=False), d.HUKOU_RECORD_NOT_FOUND),
        (hukou(name_matches=False), d.HUKOU_NAME_MISMATCH),
        (hukou(status="DEREGISTERED"), d.HUKOU_NOT_ACTIVE),
    ],
)
async def test_an_application_needs_a_resident_the_register_confirms(
    handlers: IdentityHandlers, work: FakeWork, answer: Any, reason: str
) -> None:
    with pytest.raises(FailedPrecondition) as refused:
        await handlers.create_application(
            work,
            id_number=require_id_number(YOUNG, "id_number", TODAY),
            name="沪小明",
            kind=d.ApplicationKind.FIRST_ISSUE,
            renewal_reason=None,
            accepting_region_code=HERE,
            fee_reduction=d.FeeReduction.NONE,
            residence_permit=None,
            report_loss=False,
            require_cross_province=False,
            hukou=answer,
        )
    assert refused.value.reason == reason
    assert work.records.applications == {} and work.outbox == []


async def test_one_open_application_per_person(handlers: IdentityHandlers, work: FakeWork) -> None:
    await first_issue(handlers, work)
    with pytest.raises(AlreadyExists):
        await first_issue(handlers, work)
    assert len(work.records.applications) == 1 and len(work.outbox) == 1


async def test_a_replacement_reports_the_loss_with_it(handlers: IdentityHandlers, work: FakeWork) -> None:
    work.records.cards["OLD1"] = card()
    app = (await replacement(handlers, work, report_loss=True)).application
    assert work.records.cards["OLD1"].status is d.CardStatus.REPORTED_LOST
    (report,) = work.records.loss_reports.values()
    assert report.application_id == app.id and app.loss_report == report
    assert work.types == ["CardReportedLost", "CardApplicationSubmitted"]
    lost, submitted = work.outbox
    assert lost[1:] == (
        "OLD1",
        {
            "card_number": "OLD1",
            "id_number": ADULT,
            "station_region_code": HERE,
            "inside_hukou_area": True,
            "loss_report_id": report.id,
            "reported_on": "2016-09-15",
            "application_id": app.id,
        },
    )
    assert submitted[2]["loss_report_id"] == report.id
    assert submitted[2]["loss_reported_on"] == "2016-09-15"
    assert submitted[2]["loss_already_reported"] is False


async def test_a_replacement_takes_over_a_standing_loss_report(
    handlers: IdentityHandlers, work: FakeWork
) -> None:
    work.records.cards["OLD1"] = card()
    await handlers.report_card_lost(work, ADULT, ELSEWHERE, "OLD1", hukou())
    work.outbox.clear()
    app = (await replacement(handlers, work, report_loss=False)).application
    assert app.loss_already_reported and app.loss_report is not None
    assert work.types == ["CardApplicationSubmitted"]
    assert work.outbox[0][2]["loss_already_reported"] is True


async def test_transitions_save_and_announce(handlers: IdentityHandlers, work: FakeWork) -> None:
    app_id = (await first_issue(handlers, work)).application.id
    await to_state(handlers, work, app_id, "READY_FOR_PICKUP")
    app = work.records.applications[app_id]
    assert app.state is d.ApplicationState.READY_FOR_PICKUP
    assert app.card_number == "CARD0001"  # numbered when produced
    assert work.types[1:] == ["CardApplicationApproved", "CardProduced", "CardReadyForPickup"]
    assert work.outbox[2][2]["card_number"] == "CARD0001"
    ready = work.outbox[3][2]
    assert (ready["card_number"], ready["ready_on"], ready["collect_at_region_code"]) == (
        "CARD0001",
        "2016-09-15",
        HERE,
    )


async def test_an_illegal_transition_changes_nothing(handlers: IdentityHandlers, work: FakeWork) -> None:
    app = (await first_issue(handlers, work)).application
    with pytest.raises(FailedPrecondition) as refused:
        await handlers.mark_ready(work, app.id)
    assert refused.value.reason == d.ILLEGAL_TRANSITION
    assert work.records.applications[app.id] == app and work.types == ["CardApplicationSubmitted"]
    with pytest.raises(NotFound):
        await handlers.approve(work, "no-such-id")


async def test_rejecting_a_replacement_withdraws_its_loss_report(
    handlers: IdentityHandlers, work: FakeWork
) -> None:
    work.records.cards["OLD1"] = card()
    app = (await replacement(handlers, work, report_loss=True)).application
    work.outbox.clear()
    rejected = (await handlers.reject(work, app.id, " photo unusable ", "OTHER")).application
    assert rejected.state is d.ApplicationState.REJECTED and rejected.rejection_reason == "photo unusable"
    assert work.records.cards["OLD1"].status is d.CardStatus.VALID
    (report,) = work.records.loss_reports.values()
    assert report.withdrawn_on == TODAY
    assert work.types == ["CardApplicationRejected", "CardLossReportWithdrawn"]
    assert work.outbox[0][2]["loss_report_withdrawn"] is True
    assert work.outbox[0][2]["rejection_code"] == "OTHER"
    assert work.outbox[1][1:] == (
        "OLD1",
        {
            "card_number": "OLD1",
            "id_number": ADULT,
            "loss_report_id": report.id,
            "application_id": app.id,
            "withdrawn_on": "2016-09-15",
        },
    )


async def test_cancelling_announces_the_reason(handlers: IdentityHandlers, work: FakeWork) -> None:
    app = (await first_issue(handlers, work)).application
    await handlers.cancel(work, app.id, " changed mind ")
    assert work.records.applications[app.id].state is d.ApplicationState.CANCELLED
    assert work.outbox[-1][0] == "CardApplicationCancelled"
    assert work.outbox[-1][2]["cancellation_reason"] == "changed mind"
    assert work.outbox[-1][2]["loss_report_withdrawn"] is False


async def test_issuing_supersedes_the_previous_card(handlers: IdentityHandlers, work: FakeWork) -> None:
    work.records.cards["OLD1"] = card(id_number=ADULT)
    stored = await handlers.create_application(
        work,
        id_number=require_id_number(ADULT, "id_number", TODAY),
        name="沪大芳",
        kind=d.ApplicationKind.RENEWAL,
        renewal_reason=d.RenewalReason.SERIOUS_DAMAGE,
        accepting_region_code=HERE,
        fee_reduction=d.FeeReduction.NONE,
        residence_permit=None,
        report_loss=False,
        require_cross_province=False,
        hukou=hukou(),
    )
    app_id = stored.application.id
    await to_state(handlers, work, app_id, "READY_FOR_PICKUP")
    with pytest.raises(FailedPrecondition):
        await handlers.issue_card(work, app_id, old_card_surrendered=False)
    issued, new = await handlers.issue_card(work, app_id, old_card_surrendered=True)
    assert issued.application.state is d.ApplicationState.ISSUED
    assert work.records.cards["CARD0001"] == new and new.status is d.CardStatus.VALID
    assert work.records.cards["OLD1"].status is d.CardStatus.SUPERSEDED
    event = work.outbox[-1]
    assert event[0] == "CardIssued" and event[1] == app_id
    assert event[2]["previous_card_number"] == "OLD1" and event[2]["card_number"] == "CARD0001"


# -- the card register ------------------------------------------------------------------------------------


async def test_the_address_is_recorded_on_the_current_card(
    handlers: IdentityHandlers, work: FakeWork
) -> None:
    work.records.cards["OLD1"] = card()
    updated = await handlers.update_card_address(work, ADULT, " 310105 ", " 上海市黄浦区1号 ")
    assert work.records.cards["OLD1"] == updated and updated.address == "上海市黄浦区1号"
    assert work.outbox == [
        (
            "CardAddressUpdated",
            "OLD1",
            {"id_number": ADULT, "card_number": "OLD1", "region_code": "310105", "recorded_on": "2016-09-15"},
        )
    ]
    with pytest.raises(FailedPrecondition) as refused:
        await handlers.update_card_address(work, OTHER, "310105", "上海市黄浦区1号")
    assert refused.value.reason == d.NO_CURRENT_CARD and len(work.outbox) == 1


async def test_a_loss_is_reported_only_of_the_persons_own_card(
    handlers: IdentityHandlers, work: FakeWork
) -> None:
    work.records.cards["OLD1"] = card()
    with pytest.raises(NotFound):
        await handlers.report_card_lost(work, OTHER, HERE, "OLD1", hukou())
    reported = await handlers.report_card_lost(work, ADULT, ELSEWHERE, "", hukou())
    assert work.records.cards["OLD1"].status is d.CardStatus.REPORTED_LOST
    assert work.records.loss_reports == {reported.report.id: reported.report}
    assert not reported.report.inside_hukou_area
    assert work.types == ["CardReportedLost"] and work.outbox[0][2]["application_id"] is None


async def test_queries_read_the_register(handlers: IdentityHandlers, work: FakeWork) -> None:
    records = work.records
    records.cards["OLD1"] = card(valid_until=dt.date(2016, 1, 1))
    assert (await handlers.current_card(records, ADULT)).status is d.CardStatus.EXPIRED
    with pytest.raises(NotFound):
        await handlers.current_card(records, OTHER)
    assert await handlers.verify_card(records, "OLD1", OTHER) is None
    answer = await handlers.verify_card(records, "OLD1", ADULT)
    assert answer is not None and not answer.valid and answer.reason == "EXPIRED"
    with pytest.raises(NotFound):
        await handlers.get_application(records, "no-such-id")
    with pytest.raises(NotFound):
        await handlers.get_temporary_card(records, "no-such-id")


# -- lost and found ---------------------------------------------------------------------------------------


async def test_a_found_card_already_replaced_is_destroyed(handlers: IdentityHandlers, work: FakeWork) -> None:
    work.records.cards["OLD1"] = card(status=d.CardStatus.REPORTED_LOST)
    work.records.cards["NEW1"] = card("NEW1")
    found = await handlers.register_found_card(
        work,
        card_number="OLD1",
        id_number=ADULT,
        station_region_code=HERE,
        found_place="人民广场",
        found_on=dt.date(2016, 9, 14),
    )
    assert work.records.found[found.id].status is d.FoundCardStatus.DESTROYED
    assert work.outbox == [
        (
            "FoundCardRegistered",
            found.id,
            {
                "found_card_id": found.id,
                "card_number": "OLD1",
                "id_number": ADULT,
                "status": "DESTROYED",
                "notify_owner": False,
                "station_region_code": HERE,
            },
        ),
        (
            "FoundCardDestroyed",
            found.id,
            {"found_card_id": found.id, "card_number": "OLD1", "id_number": ADULT},
        ),
    ]


async def test_a_found_card_is_returned_to_its_confirmed_owner(
    handlers: IdentityHandlers, work: FakeWork
) -> None:
    work.records.cards["OLD1"] = card()
    found = await handlers.register_found_card(
        work, card_number="OLD1", id_number=ADULT, station_region_code=HERE, found_place="x", found_on=TODAY
    )
    with pytest.raises(FailedPrecondition) as refused:
        await handlers.claim_found_card(work, found.id, ADULT, "photo-1", hukou(name_matches=False))
    assert refused.value.reason == d.IDENTITY_NOT_CONFIRMED
    with pytest.raises(NotFound):
        await handlers.claim_found_card(work, "no-such-id", ADULT, "photo-1", hukou())
    claimed = await handlers.claim_found_card(work, found.id, ADULT, "photo-1", hukou())
    assert work.records.found[found.id] == claimed and claimed.status is d.FoundCardStatus.RETURNED
    assert work.types == ["FoundCardRegistered", "FoundCardClaimed"]


# -- temporary cards --------------------------------------------------------------------------------------


async def test_one_temporary_card_per_application(handlers: IdentityHandlers, work: FakeWork) -> None:
    app = (await first_issue(handlers, work)).application
    with pytest.raises(FailedPrecondition) as refused:
        await handlers.issue_temporary_card(work, YOUNG, ELSEWHERE, True, hukou())
    assert refused.value.reason == d.NOT_AT_HUKOU_STATION
    issued = await handlers.issue_temporary_card(work, YOUNG, HERE, True, hukou())
    assert work.records.temporary == {issued.id: (issued.card, HERE)}
    assert issued.card.application_id == app.id and issued.card.issued_on == TODAY
    assert work.outbox[-1] == (
        "TemporaryCardIssued",
        issued.id,
        {
            "temporary_card_id": issued.id,
            "application_id": app.id,
            "id_number": YOUNG,
            "valid_until": issued.card.valid_until.isoformat() if issued.card.valid_until else None,
        },
    )
    with pytest.raises(AlreadyExists):
        await handlers.issue_temporary_card(work, YOUNG, HERE, True, hukou())
    assert len(work.records.temporary) == 1 and work.types.count("TemporaryCardIssued") == 1
    assert await handlers.get_temporary_card(work.records, issued.id) == issued


# -- following the household register --------------------------------------------------------------------


def death(sequence: int, id_number: str = ADULT, *, cancel_id_card: bool = True) -> d.Deregistration:
    return d.Deregistration(sequence, id_number, "DEATH", dt.date(2016, 9, 10), cancel_id_card)


async def test_a_death_cancels_the_cards_and_the_open_application(
    handlers: IdentityHandlers, work: FakeWork
) -> None:
    work.records.cards["OLDER"] = card("OLDER", status=d.CardStatus.SUPERSEDED)
    work.records.cards["OLD1"] = card()  # the current card (the last one issued)
    app = (await replacement(handlers, work, report_loss=True)).application
    work.outbox.clear()
    assert await handlers.follow_register(work, 7, death(7))
    assert work.records.cards["OLD1"].status is d.CardStatus.CANCELLED  # not restored by the withdrawal
    assert work.records.cards["OLDER"].status is d.CardStatus.SUPERSEDED
    closed = work.records.applications[app.id]
    assert closed.state is d.ApplicationState.CANCELLED
    assert closed.cancellation_reason == CANCELLATION_REASON.format(reason="DEATH")
    (report,) = work.records.loss_reports.values()
    assert report.withdrawn_on == TODAY
    assert work.types == ["CardCancelled", "CardApplicationCancelled"]  # the card stays cancelled
    assert work.outbox[1][2]["loss_report_withdrawn"] is True
    assert work.outbox[0][1:] == (
        "OLD1",
        {"card_number": "OLD1", "id_number": ADULT, "cancelled_on": "2016-09-10", "cause": "DEATH"},
    )
    assert work.records.cursors == {REGISTER: 7}


async def test_an_event_is_applied_once(handlers: IdentityHandlers, work: FakeWork) -> None:
    work.records.cards["OLD1"] = card()
    assert await handlers.follow_register(work, 3, death(3))
    work.records.cards["OLD1"] = card()  # as if nothing had happened
    assert not await handlers.follow_register(work, 3, death(3))
    assert not await handlers.follow_register(work, 2, death(2))
    assert work.records.cards["OLD1"].status is d.CardStatus.VALID and work.types == ["CardCancelled"]


async def test_other_register_events_only_move_the_cursor(handlers: IdentityHandlers, work: FakeWork) -> None:
    work.records.cards["OLD1"] = card()
    assert await handlers.follow_register(work, 1, None)  # unreadable
    assert await handlers.follow_register(work, 2, death(2, cancel_id_card=False))
    assert work.records.cards["OLD1"].status is d.CardStatus.VALID
    assert work.outbox == [] and work.records.cursors == {REGISTER: 2}


# -- the register's answer --------------------------------------------------------------------------------


async def test_the_register_is_asked_at_most_once_per_request() -> None:
    ask = hukou()
    answer = HukouAnswer(ask)
    assert await answer() == await answer()
    assert len(ask.asked) == 1


async def test_a_failed_question_is_asked_again() -> None:
    calls: list[int] = []

    async def flaky() -> d.HukouRecord:
        calls.append(1)
        if len(calls) == 1:
            raise TimeoutError
        return d.HukouRecord(True, True, "REGISTERED", "31", HERE)

    answer = HukouAnswer(flaky)
    with pytest.raises(TimeoutError):
        await answer()
    assert (await answer()).region_code == HERE and len(calls) == 2


def test_event_type_names_are_unique() -> None:
    names = [event.type for event in d.EVENT_TYPES]
    assert len(set(names)) == len(names) and "" not in names
