"""Names of region codes (GB/T 2260) for people: ``gateway/regions.toml``, read once. A code not listed
there is shown as the code itself."""

from __future__ import annotations

import functools
import tomllib
from importlib import resources


@functools.cache
def _names() -> dict[str, tuple[str, str]]:
    raw = tomllib.loads(resources.files("gateway").joinpath("regions.toml").read_text(encoding="utf-8"))
    return {code: (str(entry["zh"]), str(entry["en"])) for code, entry in raw["regions"].items()}


def region_name(code: str, lang: str = "zh") -> str:
    """The region's name in `lang` ("zh" or "en"); the code itself when it is not known."""
    names = _names().get(code)
    if names is None:
        return code
    return names[1] if lang == "en" else names[0]
