"""Checks for a foreigner's travel document that every department applies the same way.

Pure functions: each returns ``None`` when the value is acceptable, or a machine-readable reason.
"""

from __future__ import annotations

import re

import pycountry

_PASSPORT = re.compile(r"^[A-Z0-9]{5,17}$")


def normalise_passport_number(raw: str) -> str:
    """Upper-case and drop spaces: passport numbers are written with letters and digits only (ICAO 9303)."""
    return "".join(raw.split()).upper()


def passport_number_problem(raw: str) -> str | None:
    """``None`` if `raw` (after normalising) is a plausible passport number: 5 to 17 letters or digits,
    at least one digit. ICAO 9303 allows up to 9 characters in the machine-readable zone, longer national
    numbers are written in the optional data, so the register accepts up to 17."""
    value = normalise_passport_number(raw)
    if not value:
        return "REQUIRED"
    if not _PASSPORT.match(value) or not any(c.isdigit() for c in value):
        return "BAD_FORMAT"
    return None


def nationality_problem(alpha3: str) -> str | None:
    """``None`` if `alpha3` is an ISO 3166-1 alpha-3 country code (upper case)."""
    if not alpha3:
        return "REQUIRED"
    if alpha3 != alpha3.upper() or pycountry.countries.get(alpha_3=alpha3) is None:
        return "UNKNOWN_COUNTRY_CODE"
    if alpha3 == "CHN":
        return "NOT_A_FOREIGN_NATIONALITY"
    return None
