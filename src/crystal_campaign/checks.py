"""Config checks that ``crystal_campaign.config`` and the backend modules share: one line each,
naming the key and the allowed values."""

from __future__ import annotations

from pymatgen.core import Element


def element_problems(where: str, symbols: list[str]) -> list[str]:
    return [
        f"{where}: unknown element {symbol!r}; allowed: element symbols such as Na, Cl, Ti"
        for symbol in symbols
        if not Element.is_valid_symbol(symbol)
    ]
