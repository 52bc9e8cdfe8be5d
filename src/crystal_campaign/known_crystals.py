"""Known, real crystals of the default campaign's chemical systems (Na-Cl, Mg-O, Ti-O).

This is the project's embedded, offline default novelty reference: a campaign run without
any external database still has something to compare its candidates against, so that an
imported or re-generated rock-salt NaCl (or rutile TiO2, hcp Mg, ...) comes out *not novel*.

Every entry is built here with ``Structure.from_spacegroup`` from published experimental
lattice constants and Wyckoff positions (conventional cell). Each table row says where its
numbers come from (the solid-Cl2 positions are reconstructed from published distances).
Phases whose data could not be pinned down are left out on purpose:

* MgO2 (pyrite-type peroxide): the cell edge (~4.84 A) is known but the O ``x`` parameter
  could not be checked against a source, so it is omitted; Mg-O is covered by periclase.
* TiO (cubic, rock-salt derived): the real phase has ~15 % vacancies on *both* sublattices
  (measured density ~4.9 g/cm3 against 5.8 for a filled rock-salt cell); a filled cell would
  be a fictitious crystal and a partially occupied one would be the only disordered entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymatgen.core import Lattice, Structure

__all__ = ["KnownCrystal", "known_crystals"]

# (a, b, c, alpha, beta, gamma) in angstrom and degrees.
_Cell = tuple[float, float, float, float, float, float]
_Site = tuple[str, tuple[float, float, float]]


@dataclass(frozen=True)
class KnownCrystal:
    """One known crystal: a readable label, its space group and its conventional cell."""

    label: str  # e.g. "NaCl rock salt"
    space_group: str  # Hermann-Mauguin symbol as used for from_spacegroup, e.g. "Fm-3m"
    structure: Structure  # conventional cell


@dataclass(frozen=True)
class _Spec:
    label: str
    space_group: str
    cell: _Cell
    sites: tuple[_Site, ...]  # one representative per Wyckoff orbit


def _cubic(a: float) -> _Cell:
    return (a, a, a, 90.0, 90.0, 90.0)


def _hexagonal(a: float, c: float) -> _Cell:
    return (a, a, c, 90.0, 90.0, 120.0)


def _tetragonal(a: float, c: float) -> _Cell:
    return (a, a, c, 90.0, 90.0, 90.0)


def _orthorhombic(a: float, b: float, c: float) -> _Cell:
    return (a, b, c, 90.0, 90.0, 90.0)


def _monoclinic(a: float, b: float, c: float, beta: float) -> _Cell:
    return (a, b, c, 90.0, beta, 90.0)


_SPECS: tuple[_Spec, ...] = (
    # --- elemental reference states -------------------------------------------------------
    # Na, bcc (A2). Experimental, room temperature: a = 4.2906 A.
    _Spec("Na bcc", "Im-3m", _cubic(4.2906), (("Na", (0.0, 0.0, 0.0)),)),
    # Solid Cl2, Cmce (old symbol Cmca), Z = 4 molecules, isotypic with solid I2 (A14).
    # Cell: Collin (1952) X-ray, 113 K: a = 6.24, b = 4.48, c = 8.26 A (same cell as ASE's
    # reference state). Cl on 8f (0, y, z): not quoted from a table but reconstructed in this
    # cell from the published distances of that structure, Cl-Cl bond 1.98 A and shortest
    # intermolecular Cl...Cl 3.32 A (y = 0.1170, z = 0.1017; molecule 32 deg from c, as in I2).
    _Spec("Cl2 solid", "Cmce", _orthorhombic(6.24, 4.48, 8.26), (("Cl", (0.0, 0.1170, 0.1017)),)),
    # Mg, hcp (A3). Experimental, room temperature: a = 3.2094, c = 5.2108 A.
    _Spec("Mg hcp", "P6_3/mmc", _hexagonal(3.2094, 5.2108), (("Mg", (1 / 3, 2 / 3, 0.25)),)),
    # alpha-O2, C2/m, molecules centred on 000 and 1/2 1/2 0. Barrett, Meyer & Wasserman,
    # J. Chem. Phys. 47, 592 (1967), X-ray, 23 K: a = 5.403, b = 3.429, c = 5.086 A,
    # beta = 132.53 deg; O on 4i (x, 0, z), x = 0.089(10), z = 0.153(15) (O-O 1.15 A as published).
    _Spec(
        "alpha-O2",
        "C2/m",
        _monoclinic(5.403, 3.429, 5.086, 132.53),
        (("O", (0.089, 0.0, 0.153)),),
    ),
    # alpha-Ti, hcp (A3). Experimental, room temperature: a = 2.9508, c = 4.6855 A.
    _Spec("alpha-Ti hcp", "P6_3/mmc", _hexagonal(2.9508, 4.6855), (("Ti", (1 / 3, 2 / 3, 0.25)),)),
    # --- binaries ------------------------------------------------------------------------
    # NaCl halite (B1). ICSD-type experimental, room temperature: a = 5.6402 A.
    _Spec(
        "NaCl rock salt",
        "Fm-3m",
        _cubic(5.6402),
        (("Na", (0.0, 0.0, 0.0)), ("Cl", (0.5, 0.5, 0.5))),
    ),
    # MgO periclase (B1). ICSD-type experimental, room temperature: a = 4.2112 A.
    _Spec(
        "MgO rock salt (periclase)",
        "Fm-3m",
        _cubic(4.2112),
        (("Mg", (0.0, 0.0, 0.0)), ("O", (0.5, 0.5, 0.5))),
    ),
    # TiO2 rutile (C4). Swope, Smyth & Larson, Am. Mineral. 80, 448 (1995), single crystal,
    # room temperature: a = 4.5922, c = 2.9574 A; Ti 2a, O 4f (x, x, 0) with x = 0.30496.
    _Spec(
        "TiO2 rutile",
        "P4_2/mnm",
        _tetragonal(4.5922, 2.9574),
        (("Ti", (0.0, 0.0, 0.0)), ("O", (0.30496, 0.30496, 0.0))),
    ),
    # TiO2 anatase (C5). Howard, Sabine & Dickson, Acta Cryst. B47, 462 (1991), neutron,
    # room temperature: a = 3.785, c = 9.514 A; origin choice 1 (pymatgen's setting):
    # Ti 4a (0, 0, 0), O 8e (0, 0, z) with z = 0.20806.
    _Spec(
        "TiO2 anatase",
        "I4_1/amd",
        _tetragonal(3.785, 9.514),
        (("Ti", (0.0, 0.0, 0.0)), ("O", (0.0, 0.0, 0.20806))),
    ),
    # TiO2 brookite (C21). Meagher & Lager, Can. Mineral. 17, 77 (1979), single crystal,
    # room temperature: a = 9.174, b = 5.449, c = 5.138 A; three 8c sites.
    _Spec(
        "TiO2 brookite",
        "Pbca",
        _orthorhombic(9.174, 5.449, 5.138),
        (
            ("Ti", (0.1289, 0.0972, 0.8628)),
            ("O", (0.0095, 0.1491, 0.1835)),
            ("O", (0.2314, 0.1110, 0.5366)),
        ),
    ),
    # Ti2O3, corundum type (D5_1), hexagonal axes. ICSD-type experimental, room temperature:
    # a = 5.157, c = 13.61 A; Ti 12c (0, 0, z) z = 0.3446, O 18e (x, 0, 1/4) x = 0.3122
    # (gives the characteristic short face-shared Ti-Ti pair of 2.58 A along c).
    _Spec(
        "Ti2O3 corundum-type",
        "R-3c",
        _hexagonal(5.157, 13.61),
        (("Ti", (0.0, 0.0, 0.3446)), ("O", (0.3122, 0.0, 0.25))),
    ),
)


def _build(spec: _Spec) -> KnownCrystal:
    """Expand one table row into its conventional cell."""
    structure = Structure.from_spacegroup(
        spec.space_group,
        Lattice.from_parameters(*spec.cell),
        [element for element, _ in spec.sites],
        [coords for _, coords in spec.sites],
    )
    return KnownCrystal(label=spec.label, space_group=spec.space_group, structure=structure)


def known_crystals() -> list[KnownCrystal]:
    """Build the default novelty reference, freshly and in a fixed order, on every call."""
    return [_build(spec) for spec in _SPECS]
