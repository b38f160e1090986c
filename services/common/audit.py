"""The audit trail: who read or changed a person's records, hash-chained in each service's own database.

**Which calls.** A method touches personal data when its request or response message has, at any depth, a
field named ``id_number`` or ``passport_number`` (``personal_methods`` derives it from the descriptors, so
a new method is covered without touching any handler). Every call of such a method writes one entry per
person it names (the request's numbers, else the response's; at most `MAX_RECORDS_PER_CALL`), or one entry
with no record key when it names none (e.g. a NOT_FOUND by application id). Every *denied* call writes an
entry, whatever the method. The access interceptor (``services.common.access``) writes them after the
handler, in a short transaction of its own, so that refused and failed calls are recorded too.

**Entry fields.** ``sequence``, ``occurred_at`` (UTC), ``service``; who: ``client`` (the certificate's
subject CN; empty in plaintext development mode), ``organisation`` and ``outside`` (from the grants file),
``actor`` and ``actor_role`` (the ``x-govhub-actor*`` metadata the gateway forwards; an actor shaped like an
ID number is stored as its record key), ``purpose`` (``x-govhub-purpose``); which record: ``record_key`` =
HMAC-SHA256(audit key, ``"id:" + 18-digit ID number`` or ``"passport:" + NATIONALITY + ":" + NUMBER``),
hex, and ``resource`` (the request's ``id`` field, e.g. an application id); ``method`` (the gRPC path),
``outcome`` (allowed, denied, failed) and ``status`` (the gRPC status code); ``request_id``. Never a raw
ID or passport number.

**Chain.** ``entry_hash`` = SHA-256 of the canonical JSON of [``prev_hash``, every field above but
``sequence``]; ``prev_hash`` is the previous entry's ``entry_hash`` (64 zeros for the first) and is unique,
so the chain cannot fork. Appends are serialised: one asyncio lock per process, plus a transaction-scoped
advisory lock on PostgreSQL (replicas) — SQLite has one connection per process. Entries are only ever
inserted. ``python -m services.common.audit verify --database URL`` walks a chain and names the first entry
that was edited, removed or moved (exit status 1). Removing the *last* entries is not visible in the
chain itself: compare the head the verifier prints with one kept elsewhere (``--expect-head``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from sqlalchemy import Boolean, MetaData, String, insert, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import (
    NAMING,
    BigIntPK,
    UTCDateTime,
    dispose_engine,
    is_sqlite,
    make_engine,
    session_factory,
)

TABLE = "audit_log"
GENESIS = "0" * 64
MAX_RECORDS_PER_CALL = 100
_ADVISORY_KEY = 0x60B0_0A0D
PERSON_FIELDS = frozenset({"id_number", "passport_number"})
ALLOWED, DENIED, FAILED = "allowed", "denied", "failed"
_HASHED = (
    "occurred_at",
    "service",
    "client",
    "organisation",
    "outside",
    "actor",
    "actor_role",
    "purpose",
    "record_key",
    "resource",
    "method",
    "outcome",
    "status",
    "request_id",
)


class AuditMixin:
    """Columns of a service's ``audit_log`` table; each service maps it on its own Base
    (``class AuditEntry(AuditMixin, Base): __tablename__ = "audit_log"``)."""

    sequence: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    service: Mapped[str] = mapped_column(String(40))
    client: Mapped[str] = mapped_column(String(120))
    organisation: Mapped[str] = mapped_column(String(200))
    outside: Mapped[bool] = mapped_column(Boolean)
    actor: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(80))
    purpose: Mapped[str] = mapped_column(String(200))
    record_key: Mapped[str] = mapped_column(String(64), index=True)
    resource: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    entry_hash: Mapped[str] = mapped_column(String(64))


# -- record keys -------------------------------------------------------------------------------------


def write_audit_key(path: Path) -> bool:
    """Create a random 32-byte audit key (hex) at `path` unless one exists; True if it was created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under a private name, then linked into place: processes starting together never read
    # a half-written key, and the first link wins.
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    try:
        os.link(temp, path)
    except FileExistsError:
        return False
    finally:
        temp.unlink()
    return True


def load_key(path: Path, *, create: bool) -> bytes:
    """The audit key from `path` (64+ hex characters, or at least 32 raw bytes); created when missing and
    `create` (the plaintext development mode)."""
    if create and not path.exists():
        write_audit_key(path)
    raw = path.read_bytes().strip()
    try:
        key = bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = raw
    if len(key) < 32:
        raise ValueError(f"{path}: the audit key must have at least 32 bytes")
    return key


@dataclass(frozen=True)
class RecordKeys:
    """Record keys: HMAC-SHA256 of a person's normalised number under the audit key."""

    key: bytes

    def _mac(self, value: str) -> str:
        return hmac.new(self.key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    def id_number(self, value: str) -> str:
        text_ = value.strip().upper()
        if len(text_) == 15:
            from services.common.idnumber import check_id_number

            check = check_id_number(text_)
            text_ = check.normalised or text_
        return self._mac("id:" + text_)

    def passport(self, number: str, nationality: str = "") -> str:
        return self._mac(f"passport:{nationality.strip().upper()}:{number.strip().upper()}")

    def of_message(self, message: Message, limit: int = MAX_RECORDS_PER_CALL) -> list[str]:
        """The record keys of every person `message` names, in order, without repeats."""
        keys: list[str] = []
        for kind, number, nationality in person_numbers(message):
            key = self.id_number(number) if kind == "id_number" else self.passport(number, nationality)
            if key not in keys:
                keys.append(key)
                if len(keys) >= limit:
                    break
        return keys


def person_numbers(message: Message, depth: int = 0) -> Iterator[tuple[str, str, str]]:
    """(field name, number, nationality) of every non-empty id_number / passport_number in `message`."""
    if depth > 8:
        return
    for field, value in message.ListFields():
        if field.name in PERSON_FIELDS and isinstance(value, str):
            if value.strip():
                nationality = getattr(message, "nationality", "") if field.name == "passport_number" else ""
                yield field.name, value, nationality if isinstance(nationality, str) else ""
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type is None or field.message_type.GetOptions().map_entry:
                continue
            items = value if _is_repeated(field) else [value]
            for item in items:
                yield from person_numbers(item, depth + 1)


def _is_repeated(field: FieldDescriptor) -> bool:
    repeated = getattr(field, "is_repeated", None)
    if repeated is not None:
        return bool(repeated)
    return bool(getattr(field, "label", None) == FieldDescriptor.LABEL_REPEATED)  # older protobuf


def names_a_person(descriptor: Descriptor, depth: int = 0, seen: frozenset[str] = frozenset()) -> bool:
    """Whether messages of this type can carry an id_number or passport_number, at any depth."""
    if depth > 8 or descriptor.full_name in seen:
        return False
    seen = seen | {descriptor.full_name}
    for field in descriptor.fields:
        if field.name in PERSON_FIELDS and field.type == FieldDescriptor.TYPE_STRING:
            return True
        nested = field.message_type if field.type == FieldDescriptor.TYPE_MESSAGE else None
        if nested is not None and names_a_person(nested, depth + 1, seen):
            return True
    return False


def personal_methods(service_names: Iterable[str]) -> frozenset[str]:
    """The gRPC paths of the methods of `service_names` that touch personal data."""
    pool = descriptor_pool.Default()
    out = set()
    for name in service_names:
        service = pool.FindServiceByName(name)
        for method in service.methods:
            if names_a_person(method.input_type) or names_a_person(method.output_type):
                out.add(f"/{service.full_name}/{method.name}")
    return frozenset(out)


# -- the chain ---------------------------------------------------------------------------------------


def _canonical_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    values = [prev_hash]
    for name in _HASHED:
        value = fields[name]
        values.append(_canonical_time(value) if name == "occurred_at" else value)
    blob = json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Access:
    """One entry to append, before it is chained."""

    occurred_at: dt.datetime
    service: str
    client: str
    organisation: str
    outside: bool
    actor: str
    actor_role: str
    purpose: str
    record_key: str
    resource: str
    method: str
    outcome: str
    status: str
    request_id: str

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _HASHED}


class AuditTrail:
    """Appends to and reads one service's audit chain."""

    def __init__(
        self, model: type[AuditMixin], sessions: async_sessionmaker[AsyncSession], keys: RecordKeys
    ) -> None:
        self.model = model
        self.keys = keys
        self._sessions = sessions
        self._lock = asyncio.Lock()
        self._pending: list[tuple[list[Access], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._head: str | None = None  # SQLite: the entry_hash this trail last committed

    async def append(self, accesses: Sequence[Access]) -> None:
        """Chain and insert `accesses`; returns once they are committed. Appends that arrive while a
        transaction is being written are committed together in the next one (group commit): one write
        transaction per batch instead of one per call, and the chain order is the order of arrival."""
        if not accesses:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((list(accesses), done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="audit-append")
        await done

    async def _flush(self) -> None:
        # One flusher at a time: it runs until nothing is pending (no await between its last look at
        # `_pending` and its end, so an append never finds a finished flusher with its entries queued).
        async with self._lock:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._write([access for accesses, _ in batch for access in accesses])
                except Exception as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _write(self, accesses: Sequence[Access]) -> None:
        """Chain and insert `accesses` in one short transaction of their own. On SQLite the chain's head
        is the one this trail wrote last, not read again: ``prev_hash`` is unique, so an entry chained to
        a head that has since gained a successor (another writer of the file) is refused, and the batch
        is chained again to the head read from the database. On PostgreSQL (replicas append to the same
        chain) the head is read under the advisory lock."""
        if not accesses:
            return
        if self._head is not None:
            try:
                self._head = await self._insert(accesses, self._head)
                return
            except IntegrityError:
                self._head = None
        self._head = await self._insert(accesses, None)

    async def _insert(self, accesses: Sequence[Access], head: str | None) -> str | None:
        """Insert `accesses` chained to `head` (None: the head read in the transaction); returns the new
        head to remember (None on PostgreSQL)."""
        model = self.model
        async with self._sessions() as session, session.begin():
            postgresql = session.bind.dialect.name == "postgresql"
            if postgresql:
                await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})
            if head is None:
                last = await session.scalar(select(model.entry_hash).order_by(model.sequence.desc()).limit(1))
                head = last or GENESIS
            prev = head
            rows = []
            for access in accesses:
                fields = access.fields()
                digest = entry_hash(prev, fields)
                rows.append({**fields, "prev_hash": prev, "entry_hash": digest})
                prev = digest
            # One Core executemany: the entries in chain order, no ORM objects.
            await session.execute(insert(model.__table__), rows)  # type: ignore[attr-defined]
        return None if postgresql else prev

    async def about(self, record_key: str, *, before: int | None, limit: int) -> list[AuditMixin]:
        """Entries about one record, newest first; `before` a sequence (exclusive) for paging."""
        model = self.model
        stmt = select(model).where(model.record_key == record_key)
        if before is not None:
            stmt = stmt.where(model.sequence < before)
        stmt = stmt.order_by(model.sequence.desc()).limit(limit)
        async with self._sessions() as session:
            return list((await session.scalars(stmt)).all())


# -- the verifier ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    sequence: int
    problem: str  # edited | removed | moved

    def __str__(self) -> str:
        return f"entry #{self.sequence}: {self.problem}"


@dataclass(frozen=True)
class Verdict:
    checked: int  # entries intact before the finding (all of them when there is none)
    head: str  # the entry_hash of the last intact entry
    finding: Finding | None
    hashes: frozenset[str]  # every entry_hash in the table


def verify_chain(rows: Sequence[Any]) -> Verdict:
    """Walk `rows` (entries in sequence order) and name the first entry edited, removed or moved."""
    count, head, finding = _walk(rows)
    return Verdict(count, head, finding, frozenset(row.entry_hash for row in rows))


def _walk(rows: Sequence[Any]) -> tuple[int, str, Finding | None]:
    known = {row.entry_hash: row.sequence for row in rows}
    prev, prev_seq = GENESIS, None
    for count, row in enumerate(rows):
        fields = {name: getattr(row, name) for name in _HASHED}
        if entry_hash(row.prev_hash, fields) != row.entry_hash:
            return count, prev, Finding(row.sequence, "edited: its contents do not match its hash")
        if row.prev_hash != prev:
            after = "the start" if prev_seq is None else f"#{prev_seq}"
            if row.prev_hash in known:
                return (
                    count,
                    prev,
                    Finding(
                        row.sequence,
                        f"moved: it was written after #{known[row.prev_hash]}, but now follows {after} "
                        "(entries were reordered)",
                    ),
                )
            if row.prev_hash == GENESIS:
                problem = f"moved: it was the first entry, but now follows {after}"
            else:
                problem = f"the entry written before it was removed (it should follow {after})"
            return count, prev, Finding(row.sequence, problem)
        prev, prev_seq = row.entry_hash, row.sequence
    return len(rows), prev, None


class _VerifyBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class _Entry(AuditMixin, _VerifyBase):
    __tablename__ = TABLE


class NoAuditTrail(LookupError):
    """The database has no audit_log table."""


async def verify_database(url: str) -> Verdict:
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:" and not Path(database).is_file():  # noqa: ASYNC240 - once
            raise NoAuditTrail(f"no database file {database}")
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            if not await conn.run_sync(lambda sync: inspect(sync).has_table(TABLE)):
                raise NoAuditTrail(f"no {TABLE} table in this database")
        async with session_factory(engine)() as session:
            rows = list((await session.scalars(select(_Entry).order_by(_Entry.sequence))).all())
    finally:
        await dispose_engine(engine)
    return verify_chain(rows)


PROCESSES = ("identity", "residence", "permits", "gateway")


def _verdict_line(name: str, verdict: Verdict, expect_head: str) -> tuple[bool, str]:
    """(intact, the line that says so) for one chain."""
    if verdict.finding is not None:
        intact = (
            "1 entry before it is" if verdict.checked == 1 else f"{verdict.checked} entries before it are"
        )
        return False, f"{name}: audit chain BROKEN at {verdict.finding} ({intact} intact)"
    if expect_head and expect_head not in verdict.hashes:
        return False, (
            f"{name}: audit chain intact ({verdict.checked} entries, head {verdict.head}) but the expected "
            f"head {expect_head} is not in it: entries at its end were removed or the chain was rewritten"
        )
    return True, f"{name}: audit chain intact: {verdict.checked} entries, head {verdict.head}"


def verify_all(env: Mapping[str, str], expect_heads: Mapping[str, str]) -> int:
    """Every process's chain, found with the processes' own settings (``GOVHUB_VAR_DIR``,
    ``GOVHUB_<PROCESS>_DATABASE_URL``): one line each; 0 only when at least one chain was checked and
    none is broken, missing or unreadable."""
    from services.common.settings import SettingsError, database_url_from_env

    checked, ok = 0, True
    for name in PROCESSES:
        try:
            url = database_url_from_env(name, env)
            verdict = asyncio.run(verify_database(url))
        except NoAuditTrail as exc:
            print(f"{name}: NOT CHECKED: {exc}")
            ok = False
            continue
        except (SettingsError, OSError, SQLAlchemyError) as exc:
            print(f"{name}: NOT CHECKED: the database could not be read ({type(exc).__name__}: {exc})")
            ok = False
            continue
        checked += 1
        intact, line = _verdict_line(name, verdict, expect_heads.get(name, ""))
        ok = ok and intact
        print(line)
    if checked == 0:
        print("no audit chain was checked: set GOVHUB_VAR_DIR or the GOVHUB_<PROCESS>_DATABASE_URL settings")
        return 2
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.common.audit")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="check one service's audit chain")
    check.add_argument("--database", required=True, help="the service's database URL")
    check.add_argument(
        "--expect-head", default="", help="the head hash recorded earlier (catches truncation)"
    )
    every = commands.add_parser(
        "verify-all", help="check every process's chain, with the processes' settings (the environment)"
    )
    every.add_argument(
        "--expect-head",
        action="append",
        default=[],
        metavar="PROCESS=HASH",
        help="a head hash recorded earlier for one process (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.command == "verify-all":
        heads = dict(item.split("=", 1) for item in args.expect_head if "=" in item)
        return verify_all(os.environ, heads)
    try:
        verdict = asyncio.run(verify_database(args.database))
    except NoAuditTrail as exc:
        print(f"audit chain: {exc}")
        return 2
    intact, line = _verdict_line("audit chain", verdict, args.expect_head)
    print(line.removeprefix("audit chain: "))
    return 0 if intact else 1


if __name__ == "__main__":
    sys.exit(main())

__all__ = [
    "ALLOWED",
    "DENIED",
    "FAILED",
    "Access",
    "AuditMixin",
    "AuditTrail",
    "RecordKeys",
    "Verdict",
    "load_key",
    "personal_methods",
    "verify_chain",
]
