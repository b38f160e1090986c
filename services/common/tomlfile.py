"""The one strict reader of policy TOML files: parse, then decode into typed ``msgspec`` structs.

Every policy struct is declared with ``forbid_unknown_fields=True`` (use ``Policy`` as the base), so a key
the code does not know — a typo, or a setting from a newer release — stops the service at start instead of
being silently ignored. Types are strict: a string where a number belongs, or a date-time where a date
belongs, is refused. Every error names the file and the path of the offending value.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

import msgspec

__all__ = ["Policy", "PolicyError", "decode", "read_packaged", "read_toml"]

T = TypeVar("T")


class PolicyError(ValueError):
    """A policy file is malformed; the message names the file and the value at fault."""


class Policy(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of every struct a policy file is decoded into: unknown keys refused, immutable."""


def decode(data: Any, type_: type[T], source: str) -> T:
    """`data` (already parsed TOML) as `type_`; raises ``PolicyError`` naming `source` and the key."""
    try:
        return msgspec.convert(data, type_, strict=True)
    except msgspec.ValidationError as exc:
        raise PolicyError(f"{source}: {exc}") from None


def read_toml(path: Path | Traversable, type_: type[T], source: str | None = None) -> T:
    """Read, parse and decode one TOML file."""
    name = source or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{name}: cannot read ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{name}: {exc}") from None
    return decode(data, type_, name)


def read_packaged(package: str, name: str, type_: type[T]) -> T:
    """A TOML file shipped inside `package` (e.g. ``services.permits``, ``policy.toml``)."""
    source = f"{package.replace('.', '/')}/{name}"
    return read_toml(resources.files(package).joinpath(name), type_, source)
