"""Differentiable porous-material physics: force fields, energy grids, Widom insertion,
adsorption descriptors.

Everything is a pure function of arrays, so Henry coefficients, grids and descriptors can be
differentiated with respect to atom positions, the cell and force-field parameters.
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
