"""Porous-material physics: force fields, energy grids, Widom insertion (with Ewald
electrostatics when framework charges are given), adsorption descriptors, and pore geometry
(``jmof.physics.geometry``: LCD, PLD, LFPD, ASA, void fractions).

Grids, Henry coefficients and descriptors are pure JAX functions of arrays, so they can be
differentiated with respect to atom positions, the cell and force-field parameters; the geometric
descriptors are computed host-side (NumPy, SciPy) on an exact distance grid.
"""

from jmof.physics.descriptors import average_boltzmann_factor, energy_histogram
from jmof.physics.forcefield import GUESTS, ForceField, Guest, dreiding, guest, uff
from jmof.physics.grid import EnergyGrid, energy_grid, interpolate, read_griday
from jmof.physics.widom import (
    HenryResult,
    henry_coefficient,
    henry_coefficients,
    henry_from_energies,
    log_henry,
)

__all__ = [
    "GUESTS",
    "EnergyGrid",
    "ForceField",
    "Guest",
    "HenryResult",
    "average_boltzmann_factor",
    "dreiding",
    "energy_grid",
    "energy_histogram",
    "guest",
    "henry_coefficient",
    "henry_coefficients",
    "henry_from_energies",
    "interpolate",
    "log_henry",
    "read_griday",
    "uff",
]
