"""The permits department's tables."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from services.common.db import NAMING
from services.common.idempotency import IdempotencyMixin
from services.common.outbox import OutboxMixin


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class OutboxEvent(OutboxMixin, Base):
    __tablename__ = "outbox"


class IdempotencyRecord(IdempotencyMixin, Base):
    __tablename__ = "idempotency"
