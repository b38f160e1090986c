"""The audit trail on real servers: outside systems must give a purpose; allowed, denied and failed calls
are recorded with record keys, never raw numbers; a person's own view through AuditService; the chain stays
a chain under concurrent calls; the verifier names the first edited, removed or moved entry."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import MetaData, delete, select, update
from sqlalchemy.orm import DeclarativeBase

from govhub.audit.v1 import audit_pb2, audit_pb2_grpc
from govhub.common.v1 import common_pb2
from govhub.identity.v1 import identity_pb2 as pb
from govhub.identity.v1 import identity_pb2_grpc
from services.common import audit
from services.common import metadata as md
from services.common.audit import Access, AuditMixin, AuditTrail, RecordKeys
from services.common.clock import Clock
from services.common.db import NAMING, create_schema, dispose_engine, make_engine, session_factory
from services.common.settings import CommonSettings, SecuritySettings, ServiceSettings
from services.identity.residence import FakeHukouDirectory
from services.permits.server import build_server as build_permits
from tests.service.security.conftest import (
    ID_NUMBERS,
    PASSPORT_NUMBERS,
    RAW_NUMBERS,
    TODAY,
    Pki,
    audit_key,
)
from tests.service.security.support import Running, error_reason, start

TIANJIN, HENAN, STRANGER = ID_NUMBERS  # 天津 and 河南 hukou in the fake register; STRANGER is not in it
NAMES = {TIANJIN: "王津生", HENAN: "李豫华"}


def register() -> FakeHukouDirectory:
    directory = FakeHukouDirectory()
    directory.add(TIANJIN, NAMES[TIANJIN], "120101")
    directory.add(HENAN, NAMES[HENAN], "410105")
    return directory


def renewal(id_number: str) -> pb.CreateCardApplicationRequest:
    return pb.CreateCardApplicationRequest(
        request_id=str(uuid.uuid4()),
        id_number=id_number,
        name=NAMES[id_number],
        kind=pb.CARD_APPLICATION_KIND_RENEWAL,
        renewal_reason=pb.RENEWAL_REASON_EXPIRY,
        accepting_region_code="310104",
        residence_permit=pb.ResidencePermit(
            number="SH3101042016000123", valid_until=common_pb2.Date(year=2017, month=8, day=31)
        ),
    )


def no_raw_numbers(rows: list[Any]) -> None:
    for row in rows:
        text = repr({c: getattr(row, c) for c in row.__table__.columns.keys()})  # noqa: SIM118
        for raw in RAW_NUMBERS:
            assert raw not in text and raw.lower() not in text, row.sequence


@pytest.fixture
async def identity(db_url: str, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> Any:
    running = await start("identity", db_url, pki, monkeypatch, hukou=register())
    try:
        yield running
    finally:
        await running.service.stop(0)


def channel(running: Running, pki: Pki, client: str) -> grpc.aio.Channel:
    return grpc.aio.secure_channel(running.target, pki.credentials(client))


async def test_outside_systems_must_give_a_purpose_and_it_is_recorded(identity: Running, pki: Pki) -> None:
    request = pb.VerifyCardRequest(card_number="120101198503120115A", id_number=HENAN)
    async with channel(identity, pki, "social-security") as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.VerifyCard(request, timeout=5)
        assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(err.value) == "PURPOSE_REQUIRED"
        assert identity.calls["VerifyCard"] == 0
        await stub.VerifyCard(request, timeout=5, metadata=((md.PURPOSE, "pension eligibility check"),))
        assert identity.calls["VerifyCard"] == 1
    # Our own gateway is not an outside system: no purpose needed.
    async with channel(identity, pki, "gateway") as ch:
        await identity_pb2_grpc.IdentityServiceStub(ch).CreateCardApplication(renewal(TIANJIN), timeout=5)
    denied, allowed, own = await identity.audit_rows()
    key = RecordKeys(audit_key(pki)).id_number(HENAN)
    assert (denied.outcome, denied.client, denied.purpose, denied.record_key) == (
        "denied",
        "social-security",
        "",
        key,
    )
    assert (allowed.outcome, allowed.purpose, allowed.outside) == (
        "allowed",
        "pension eligibility check",
        True,
    )
    assert allowed.organisation.startswith("municipal human resources")
    assert (own.client, own.outside, own.purpose) == ("gateway", False, "")


async def test_allowed_denied_and_failed_calls_are_recorded_without_raw_numbers(
    identity: Running, pki: Pki
) -> None:
    keys = RecordKeys(audit_key(pki))
    citizen = ((md.ACTOR, TIANJIN), (md.ACTOR_ROLE, "citizen"))
    async with channel(identity, pki, "gateway") as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        app = (
            await stub.CreateCardApplication(renewal(TIANJIN), timeout=5, metadata=citizen)
        ).card_application
        with pytest.raises(grpc.aio.AioRpcError) as err:  # no such application: NOT_FOUND, a failed call
            await stub.CancelCardApplication(
                pb.CancelCardApplicationRequest(
                    request_id=str(uuid.uuid4()), id=str(uuid.uuid4()), reason="x"
                ),
                timeout=5,
                metadata=((md.ACTOR, "staff-0042"), (md.ACTOR_ROLE, "staff")),
            )
        assert err.value.code() is grpc.StatusCode.NOT_FOUND
        # written before the error status went out
        assert [r.outcome for r in await identity.audit_rows()] == ["allowed", "failed"]
        with pytest.raises(grpc.aio.AioRpcError) as err:  # an incomplete request: INVALID_ARGUMENT
            await stub.CreateCardApplication(pb.CreateCardApplicationRequest(id_number=STRANGER), timeout=5)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    async with channel(identity, pki, "civil-affairs") as ch:  # not granted GetCardApplication
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await identity_pb2_grpc.IdentityServiceStub(ch).GetCardApplication(
                pb.GetCardApplicationRequest(id=app.id), timeout=5, metadata=((md.PURPOSE, "curious"),)
            )
        assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    rows = await identity.audit_rows()
    no_raw_numbers(rows)
    created, cancel, stranger, peek = rows
    assert (created.method, created.outcome, created.status) == (
        "govhub.identity.v1.IdentityService/CreateCardApplication",
        "allowed",
        "OK",
    )
    assert created.record_key == keys.id_number(TIANJIN)
    assert created.actor == "key:" + keys.id_number(TIANJIN)  # a citizen actor is keyed, not stored raw
    assert (created.actor_role, created.client, created.resource) == ("citizen", "gateway", "")
    assert (cancel.outcome, cancel.status, cancel.actor, cancel.record_key) == (
        "failed",
        "NOT_FOUND",
        "staff-0042",
        "",
    )
    assert (stranger.outcome, stranger.status, stranger.record_key) == (
        "failed",
        "INVALID_ARGUMENT",
        keys.id_number(STRANGER),
    )
    assert (peek.outcome, peek.client, peek.resource, peek.purpose) == (
        "denied",
        "civil-affairs",
        app.id,
        "curious",
    )
    verdict = audit.verify_chain(rows)
    assert verdict.finding is None and verdict.checked == 4


async def test_a_person_sees_who_accessed_their_record(identity: Running, pki: Pki) -> None:
    async with channel(identity, pki, "gateway") as ch:
        await identity_pb2_grpc.IdentityServiceStub(ch).CreateCardApplication(
            renewal(TIANJIN), timeout=5, metadata=((md.ACTOR, "staff-7"), (md.ACTOR_ROLE, "staff"))
        )
    async with channel(identity, pki, "social-security") as ch:
        for _ in range(3):
            await identity_pb2_grpc.IdentityServiceStub(ch).VerifyCard(
                pb.VerifyCardRequest(card_number="x", id_number=TIANJIN),
                timeout=5,
                metadata=((md.PURPOSE, "pension eligibility check"),),
            )
        with pytest.raises(grpc.aio.AioRpcError) as err:  # AuditService is the gateway's only
            await audit_pb2_grpc.AuditServiceStub(ch).ListAccessEntries(
                audit_pb2.ListAccessEntriesRequest(id_number=TIANJIN),
                timeout=5,
                metadata=((md.PURPOSE, "x"),),
            )
        assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    async with channel(identity, pki, "gateway") as ch:
        stub = audit_pb2_grpc.AuditServiceStub(ch)
        first = await stub.ListAccessEntries(
            audit_pb2.ListAccessEntriesRequest(id_number=TIANJIN, page_size=3), timeout=5
        )
        second = await stub.ListAccessEntries(
            audit_pb2.ListAccessEntriesRequest(
                id_number=TIANJIN, page_size=3, page_token=first.next_page_token
            ),
            timeout=5,
        )
        other = await stub.ListAccessEntries(audit_pb2.ListAccessEntriesRequest(id_number=HENAN), timeout=5)
    entries = [*first.entries, *second.entries]
    assert first.next_page_token and not second.next_page_token
    # newest first: three verifications, then the application (the denied ListAccessEntries has the same key)
    assert [e.method.rsplit("/", 1)[1] for e in entries] == [
        "ListAccessEntries",
        "VerifyCard",
        "VerifyCard",
        "VerifyCard",
        "CreateCardApplication",
    ]
    verify = entries[1]
    assert (verify.department, verify.client_system, verify.purpose) == (
        "identity",
        "social-security",
        "pension eligibility check",
    )
    assert verify.organisation.startswith("municipal human resources")
    assert verify.outcome == audit_pb2.ACCESS_OUTCOME_ALLOWED
    assert entries[0].outcome == audit_pb2.ACCESS_OUTCOME_DENIED
    assert entries[-1].role == "staff" and "staff-7" not in str(first) + str(second)
    # the process's one clock (the day pinned to TODAY, as the gateway's entries are)
    assert abs(entries[-1].access_time.ToDatetime(dt.UTC) - Clock(TODAY).now()) < dt.timedelta(hours=1)
    assert list(other.entries) == []


async def test_the_chain_stays_a_chain_under_concurrent_calls(identity: Running, pki: Pki) -> None:
    async with channel(identity, pki, "social-security") as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        purpose = ((md.PURPOSE, "load"),)
        await asyncio.gather(
            *(
                stub.VerifyCard(
                    pb.VerifyCardRequest(card_number=str(i), id_number=HENAN), timeout=10, metadata=purpose
                )
                for i in range(40)
            )
        )
    rows = await identity.audit_rows()
    assert len(rows) == 40
    assert audit.verify_chain(rows).finding is None


# -- the verifier ---------------------------------------------------------------------------------------


class _Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Entry(AuditMixin, _Base):
    __tablename__ = "audit_log"


def access(i: int, outcome: str = "allowed") -> Access:
    return Access(
        occurred_at=dt.datetime.now(dt.UTC),
        service="permits",
        client="gateway",
        organisation="govhub",
        outside=False,
        actor="",
        actor_role="citizen",
        purpose=f"purpose {i}",
        record_key=RecordKeys(b"k" * 32).passport(PASSPORT_NUMBERS[i % 2], "DEU"),
        resource="",
        method="govhub.permits.v1.PermitsService/GetWorkPermitApplication",
        outcome=outcome,
        status="OK",
        request_id="",
    )


async def chain(db_url: str, n: int) -> Any:
    engine = make_engine(db_url, pool_size=5)
    await create_schema(engine, _Base.metadata)
    trail = AuditTrail(Entry, session_factory(engine), RecordKeys(b"k" * 32))
    for i in range(n):
        await trail.append([access(i)])
    return engine


async def verify_cli(db_url: str) -> tuple[int, str]:
    out = io.StringIO()

    def run() -> int:
        import contextlib

        with contextlib.redirect_stdout(out):
            return audit.main(["verify", "--database", db_url])

    status = await asyncio.to_thread(run)
    return status, out.getvalue().strip()


async def tamper(engine: Any, statement: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(statement)


async def test_the_verifier_passes_an_intact_chain(db_url: str) -> None:
    engine = await chain(db_url, 5)
    await dispose_engine(engine)
    status, output = await verify_cli(db_url)
    assert status == 0
    assert output.startswith("audit chain intact: 5 entries, head ")


async def test_the_verifier_names_an_edited_entry(db_url: str) -> None:
    engine = await chain(db_url, 6)
    await tamper(engine, update(Entry).where(Entry.sequence == 4).values(purpose="nothing to see"))
    await tamper(engine, update(Entry).where(Entry.sequence == 5).values(outcome="denied"))
    await dispose_engine(engine)
    status, output = await verify_cli(db_url)
    assert status == 1
    assert output == (
        "audit chain BROKEN at entry #4: edited: its contents do not match its hash "
        "(3 entries before it are intact)"
    )


async def test_the_verifier_names_a_removed_entry(db_url: str) -> None:
    engine = await chain(db_url, 6)
    await tamper(engine, delete(Entry).where(Entry.sequence == 3))
    await dispose_engine(engine)
    status, output = await verify_cli(db_url)
    assert status == 1
    assert output == (
        "audit chain BROKEN at entry #4: the entry written before it was removed (it should follow #2) "
        "(2 entries before it are intact)"
    )


async def test_the_verifier_names_swapped_entries(db_url: str) -> None:
    engine = await chain(db_url, 6)
    async with session_factory(engine)() as session:
        two, three = (
            await session.scalars(select(Entry).where(Entry.sequence.in_([2, 3])).order_by(Entry.sequence))
        ).all()
        columns = [c for c in Entry.__table__.columns.keys() if c != "sequence"]  # noqa: SIM118
        values = {c: (getattr(two, c), getattr(three, c)) for c in columns}
    # Swap the contents of #2 and #3 (through a free prev_hash, which is unique).
    await tamper(engine, update(Entry).where(Entry.sequence == 2).values(prev_hash="x"))
    await tamper(
        engine, update(Entry).where(Entry.sequence == 3).values({c: v[0] for c, v in values.items()})
    )
    await tamper(
        engine, update(Entry).where(Entry.sequence == 2).values({c: v[1] for c, v in values.items()})
    )
    rows_engine = engine
    async with session_factory(rows_engine)() as session:
        rows = (await session.scalars(select(Entry).order_by(Entry.sequence))).all()
    await dispose_engine(engine)
    finding = audit.verify_chain(rows).finding
    assert finding is not None and finding.sequence == 2 and finding.problem.startswith("moved")
    status, output = await verify_cli(db_url)
    assert status == 1
    assert output.startswith("audit chain BROKEN at entry #2: moved: it was written after #")


async def test_a_forked_chain_cannot_be_written(db_url: str) -> None:
    """Two writers that read the same head cannot both append: prev_hash is unique, and on PostgreSQL
    two separate engines (two replicas) are serialised by the advisory lock."""
    engine = await chain(db_url, 1)
    other = make_engine(db_url, pool_size=5)
    trails = [AuditTrail(Entry, session_factory(e), RecordKeys(b"k" * 32)) for e in (engine, other)]
    try:
        if engine.dialect.name == "postgresql":
            await asyncio.gather(*(trails[i % 2].append([access(i)]) for i in range(30)))
        else:  # one writer per SQLite file: concurrency within the process
            await asyncio.gather(*(trails[0].append([access(i)]) for i in range(30)))
        async with session_factory(engine)() as session:
            rows = (await session.scalars(select(Entry).order_by(Entry.sequence))).all()
    finally:
        await dispose_engine(other)
        await dispose_engine(engine)
    assert len(rows) == 31
    assert audit.verify_chain(rows).finding is None


async def test_two_trails_of_one_database_writing_in_turn_keep_one_chain(db_url: str) -> None:
    """A trail chains its next entries to the head it wrote last (SQLite): when another trail of the
    same database has appended meanwhile, that entry is refused and chained again to the real head."""
    engine = await chain(db_url, 1)
    trails = [AuditTrail(Entry, session_factory(engine), RecordKeys(b"k" * 32)) for _ in range(2)]
    try:
        for i in range(8):
            await trails[(i // 2) % 2].append([access(i)])
        async with session_factory(engine)() as session:
            rows = (await session.scalars(select(Entry).order_by(Entry.sequence))).all()
    finally:
        await dispose_engine(engine)
    assert len(rows) == 9
    assert audit.verify_chain(rows).finding is None


# -- plaintext mode -----------------------------------------------------------------------------------


async def test_plaintext_mode_warns_loudly_and_still_audits(
    db_url: str, tmp_path: Any, rendered_logs: io.StringIO
) -> None:
    settings = ServiceSettings(
        service="permits",
        host="127.0.0.1",
        port=0,
        database_url=db_url,
        common=CommonSettings(var_dir=tmp_path),
        health_interval=60.0,
        security=SecuritySettings(tls=False),
    )
    service = await build_permits(settings)
    assert "GRANTS ARE NOT ENFORCED" in rendered_logs.getvalue()
    assert (tmp_path / "audit.key").is_file()  # the development key, made on first start
    await service.start()
    try:
        from govhub.permits.v1 import permits_pb2, permits_pb2_grpc

        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as ch:
            reply = await permits_pb2_grpc.PermitsServiceStub(ch).ListWorkPermitApplications(
                permits_pb2.ListWorkPermitApplicationsRequest(
                    passport_number=PASSPORT_NUMBERS[0], nationality="DEU"
                ),
                timeout=5,
            )
        assert list(reply.work_permit_applications) == []
    finally:
        await service.stop(0)
    engine = make_engine(db_url, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            from services.permits.store import AuditEntry

            [row] = (await session.scalars(select(AuditEntry))).all()
    finally:
        await dispose_engine(engine)
    key = RecordKeys(audit.load_key(tmp_path / "audit.key", create=False)).passport(
        PASSPORT_NUMBERS[0], "DEU"
    )
    assert (row.client, row.outcome, row.record_key) == ("", "allowed", key)


async def test_log_lines_carry_no_raw_numbers(
    identity: Running, pki: Pki, rendered_logs: io.StringIO
) -> None:
    """The scan of every test's log output (conftest ``rendered_logs``) has something to scan: refusals
    are logged with the client and method, and the numbers in the requests stay out of the lines."""
    async with channel(identity, pki, "civil-affairs") as ch:
        with pytest.raises(grpc.aio.AioRpcError):
            await identity_pb2_grpc.IdentityServiceStub(ch).ListCards(
                pb.ListCardsRequest(id_number=TIANJIN),
                timeout=5,
                metadata=((md.PURPOSE, f"about {TIANJIN}"),),
            )
    text = rendered_logs.getvalue()
    assert '"access denied"' in text and "civil-affairs" in text and "ListCards" in text
    assert TIANJIN not in text
    [row] = await identity.audit_rows()
    assert TIANJIN not in row.purpose  # a number inside a purpose is masked too


async def test_an_outside_system_cannot_choose_its_role_and_numbers_in_its_purpose_are_masked(
    identity: Running, pki: Pki
) -> None:
    """Issue 15: `x-govhub-actor-role: citizen` from an outside system is ignored (its grant's role is
    recorded), and a passport or phone number in a purpose is never stored raw."""
    request = pb.VerifyCardRequest(card_number="120101198503120115A", id_number=HENAN)
    purpose = f"check for passport {PASSPORT_NUMBERS[0]}, call 13812345678 or 021-62345678"
    spoof = ((md.PURPOSE, purpose), (md.ACTOR_ROLE, "citizen"), (md.ACTOR, "someone"))
    async with channel(identity, pki, "social-security") as ch:
        await identity_pb2_grpc.IdentityServiceStub(ch).VerifyCard(request, timeout=5, metadata=spoof)
    [row] = await identity.audit_rows()
    assert row.actor_role == "outside system"
    for raw in (PASSPORT_NUMBERS[0], "13812345678", "62345678"):
        assert raw not in row.purpose, row.purpose
    assert row.purpose.startswith("check for passport ") and row.purpose.endswith("78")


def make_audit_verify(env: dict[str, str]) -> tuple[int, list[str]]:
    """`make audit-verify` as an operator runs it, with `env` as the processes' settings."""
    import os
    import subprocess

    root = Path(__file__).resolve().parents[3]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", "audit-verify"],
        cwd=root,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout.strip().splitlines()


async def test_make_audit_verify_reads_the_processes_settings_and_fails_on_nothing(tmp_path: Path) -> None:
    """Issue 15: with GOVHUB_VAR_DIR elsewhere it read ./var, found nothing and passed."""
    status, lines = await asyncio.to_thread(make_audit_verify, {"GOVHUB_VAR_DIR": str(tmp_path)})
    assert status != 0
    assert len([line for line in lines if "NOT CHECKED" in line]) == 4, lines
    assert lines[-1].startswith("no audit chain was checked")


async def test_make_audit_verify_checks_every_chain_including_the_gateways(tmp_path: Path) -> None:
    names = ("identity", "residence", "permits", "gateway")
    for name in names:
        engine = await chain(f"sqlite+aiosqlite:///{tmp_path / (name + '.db')}", 3)
        if name == "permits":
            await tamper(engine, update(Entry).where(Entry.sequence == 2).values(purpose="rewritten"))
        await dispose_engine(engine)
    elsewhere = tmp_path / "pg-like"
    elsewhere.mkdir()
    (tmp_path / "gateway.db").rename(elsewhere / "gateway.db")
    env = {
        "GOVHUB_VAR_DIR": str(tmp_path),
        "GOVHUB_GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{elsewhere / 'gateway.db'}",
    }
    status, lines = await asyncio.to_thread(make_audit_verify, env)
    assert status != 0, lines  # make exits 2 when the verifier exits 1
    assert [line.split(":", 1)[0] for line in lines] == list(names)
    assert lines[0].startswith("identity: audit chain intact: 3 entries")
    assert lines[2].startswith("permits: audit chain BROKEN at entry #2")
    assert lines[3].startswith("gateway: audit chain intact: 3 entries")
