"""Lennard-Jones force fields for host–guest energies: UFF and DREIDING frameworks, guest models.

Parameters are stored per element as arrays indexed by atomic number Z, so that a force field is
a pytree whose leaves can be differentiated (∂K_H/∂ε_Z, ∂K_H/∂σ_Z) and optimised.

Sources (the tables below are the published numbers, converted once):

- UFF: A. K. Rappé, C. J. Casewit, K. S. Colwell, W. A. Goddard III, W. M. Skiff,
  J. Am. Chem. Soc. 114, 10024 (1992), Table 1: nonbond distance x_i (Å) and well depth D_i
  (kcal/mol) for H–Lr. σ = x_i / 2^(1/6), ε/k_B = D_i / R.
- DREIDING: S. L. Mayo, B. D. Olafson, W. A. Goddard III, J. Phys. Chem. 94, 8897 (1990),
  Table II: R_0 (Å) and D_0 (kcal/mol) for H, B, C, N, O, F, Na, Al, Si, P, S, Cl, Ca, Fe, Zn,
  Ga, Ge, As, Se, Br, In, Sn, Sb, Te, I. Elements DREIDING does not define take UFF's values,
  the usual practice in MOF screening (e.g. RASPA's "GenericMOFs").
- Guests: TraPPE — CH4 united atom (M. G. Martin, J. I. Siepmann, J. Phys. Chem. B 102, 2569
  (1998)), CO2 and N2 (J. J. Potoff, J. I. Siepmann, AIChE J. 47, 1676 (2001)); Kr and Xe as in
  Xe/Kr screening of MOFs (Kr ε/k_B = 166.4 K, σ = 3.636 Å; Xe 221 K, 4.1 Å; Hirschfelder,
  Curtiss, Bird, Molecular Theory of Gases and Liquids, 1954); H2 single site (V. Buch, J. Chem.
  Phys. 100, 7610 (1994): 34.2 K, 2.96 Å); He for the helium void fraction (10.9 K, 2.64 Å,
  Hirschfelder, as RASPA).

Units: ε in kelvin (energy / k_B), σ and distances in Å, energies returned in kelvin.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

KCAL_PER_MOL_IN_K = 4184.0 / 8.314462618  # 1 kcal/mol / R = 503.2195 K
K_IN_KJ_PER_MOL = 8.314462618e-3  # k_B N_A in kJ/mol/K
_TWO_SIXTH = 2.0 ** (1.0 / 6.0)
N_ELEMENTS = 119  # table length: index Z = 0 … 118 (0 is unused)

# UFF (Rappé 1992, Table 1): Z -> (x_i in Å, D_i in kcal/mol), H (1) to Lr (103).
_UFF = {
    1: (2.886, 0.044), 2: (2.362, 0.056), 3: (2.451, 0.025), 4: (2.745, 0.085),
    5: (4.083, 0.180), 6: (3.851, 0.105), 7: (3.660, 0.069), 8: (3.500, 0.060),
    9: (3.364, 0.050), 10: (3.243, 0.042), 11: (2.983, 0.030), 12: (3.021, 0.111),
    13: (4.499, 0.505), 14: (4.295, 0.402), 15: (4.147, 0.305), 16: (4.035, 0.274),
    17: (3.947, 0.227), 18: (3.868, 0.185), 19: (3.812, 0.035), 20: (3.399, 0.238),
    21: (3.295, 0.019), 22: (3.175, 0.017), 23: (3.144, 0.016), 24: (3.023, 0.015),
    25: (2.961, 0.013), 26: (2.912, 0.013), 27: (2.872, 0.014), 28: (2.834, 0.015),
    29: (3.495, 0.005), 30: (2.763, 0.124), 31: (4.383, 0.415), 32: (4.280, 0.379),
    33: (4.230, 0.309), 34: (4.205, 0.291), 35: (4.189, 0.251), 36: (4.141, 0.220),
    37: (4.114, 0.040), 38: (3.641, 0.235), 39: (3.345, 0.072), 40: (3.124, 0.069),
    41: (3.165, 0.059), 42: (3.052, 0.056), 43: (2.998, 0.048), 44: (2.963, 0.056),
    45: (2.929, 0.053), 46: (2.899, 0.048), 47: (3.148, 0.036), 48: (2.848, 0.228),
    49: (4.463, 0.599), 50: (4.392, 0.567), 51: (4.420, 0.449), 52: (4.470, 0.398),
    53: (4.500, 0.339), 54: (4.404, 0.332), 55: (4.517, 0.045), 56: (3.703, 0.364),
    57: (3.522, 0.017), 58: (3.556, 0.013), 59: (3.606, 0.010), 60: (3.575, 0.010),
    61: (3.547, 0.009), 62: (3.520, 0.008), 63: (3.493, 0.008), 64: (3.368, 0.009),
    65: (3.451, 0.007), 66: (3.428, 0.007), 67: (3.409, 0.007), 68: (3.391, 0.007),
    69: (3.374, 0.006), 70: (3.355, 0.228), 71: (3.640, 0.041), 72: (3.141, 0.072),
    73: (3.170, 0.081), 74: (3.069, 0.067), 75: (2.954, 0.066), 76: (3.120, 0.037),
    77: (2.840, 0.073), 78: (2.754, 0.080), 79: (3.293, 0.039), 80: (2.705, 0.385),
    81: (4.347, 0.680), 82: (4.297, 0.663), 83: (4.370, 0.518), 84: (4.709, 0.325),
    85: (4.750, 0.284), 86: (4.765, 0.248), 87: (4.900, 0.050), 88: (3.677, 0.404),
    89: (3.478, 0.033), 90: (3.396, 0.026), 91: (3.424, 0.022), 92: (3.395, 0.022),
    93: (3.424, 0.019), 94: (3.424, 0.016), 95: (3.381, 0.014), 96: (3.326, 0.013),
    97: (3.339, 0.013), 98: (3.313, 0.013), 99: (3.299, 0.012), 100: (3.286, 0.012),
    101: (3.274, 0.011), 102: (3.248, 0.011), 103: (3.236, 0.011),
}  # fmt: skip

# DREIDING (Mayo 1990, Table II): Z -> (R_0 in Å, D_0 in kcal/mol).
_DREIDING = {
    1: (3.195, 0.0152), 5: (4.02, 0.095), 6: (3.8983, 0.0951), 7: (3.6621, 0.0774),
    8: (3.4046, 0.0957), 9: (3.472, 0.0725), 11: (3.144, 0.5), 13: (4.39, 0.31),
    14: (4.27, 0.31), 15: (4.15, 0.32), 16: (4.03, 0.344), 17: (3.9503, 0.2833),
    20: (3.472, 0.05), 26: (4.54, 0.055), 30: (4.54, 0.055), 31: (4.39, 0.40),
    32: (4.27, 0.40), 33: (4.15, 0.41), 34: (4.03, 0.43), 35: (3.95, 0.37),
    49: (4.59, 0.55), 50: (4.47, 0.55), 51: (4.35, 0.55), 52: (4.23, 0.57),
    53: (4.15, 0.51),
}  # fmt: skip

_SOURCES = {
    "UFF": "Rappé et al., J. Am. Chem. Soc. 114, 10024 (1992)",
    "DREIDING": "Mayo, Olafson, Goddard, J. Phys. Chem. 94, 8897 (1990); UFF where undefined",
}


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ForceField:
    """Framework Lennard-Jones parameters per element, Lorentz–Berthelot mixing with guests.

    Attributes:
        epsilon: [119] K, well depth ε/k_B of element Z at index Z (0 where undefined).
        sigma: [119] Å, LJ diameter σ of element Z at index Z (0 marks an undefined element).
        name: label, e.g. ``"UFF"`` (static).
        cutoff: Å, pair interactions beyond it are zero (static).
        shifted: whether the pair energy is shifted to 0 at the cutoff (static). The shift
            removes the step at the cutoff; GRIDAY's grids are truncated without shift.
    """

    epsilon: jax.Array
    sigma: jax.Array
    name: str = dataclasses.field(default="UFF", metadata=dict(static=True))
    cutoff: float = dataclasses.field(default=12.8, metadata=dict(static=True))
    shifted: bool = dataclasses.field(default=True, metadata=dict(static=True))

    def replace(self, **changes) -> ForceField:
        return dataclasses.replace(self, **changes)

    def check(self, species: Sequence[int] | np.ndarray, name: str = "structure") -> None:
        """Raise ``ValueError`` naming the elements this force field has no parameters for."""
        from ase.data import chemical_symbols

        z = np.unique(np.asarray(species, dtype=int))
        sig = np.asarray(self.sigma)
        bad = [int(k) for k in z if k <= 0 or k >= len(sig) or not sig[k] > 0]
        if bad:
            symbols = ", ".join(chemical_symbols[k] if 0 < k < 119 else str(k) for k in bad)
            raise ValueError(f"{name}: force field {self.name} has no parameters for {symbols}")


def _table(rows: dict[int, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    eps = np.zeros(N_ELEMENTS)
    sig = np.zeros(N_ELEMENTS)
    for z, (r_min, depth) in rows.items():
        sig[z] = r_min / _TWO_SIXTH
        eps[z] = depth * KCAL_PER_MOL_IN_K
    return eps, sig


def uff(cutoff: float = 12.8, shifted: bool = True) -> ForceField:
    """UFF Lennard-Jones parameters for H–Lr (Rappé et al. 1992)."""
    eps, sig = _table(_UFF)
    return ForceField(jnp.asarray(eps), jnp.asarray(sig), "UFF", float(cutoff), bool(shifted))


def dreiding(cutoff: float = 12.8, shifted: bool = True) -> ForceField:
    """DREIDING Lennard-Jones parameters (Mayo et al. 1990), UFF for the elements it lacks."""
    eps, sig = _table({**_UFF, **_DREIDING})
    return ForceField(jnp.asarray(eps), jnp.asarray(sig), "DREIDING", float(cutoff), bool(shifted))


FORCEFIELDS = {"UFF": uff, "DREIDING": dreiding}


def forcefield(
    name: str | ForceField = "UFF", cutoff: float = 12.8, shifted: bool = True
) -> ForceField:
    """A force field by name (``"UFF"`` or ``"DREIDING"``, case-insensitive); a ``ForceField``
    passes through unchanged."""
    if isinstance(name, ForceField):
        return name
    key = str(name).upper()
    if key not in FORCEFIELDS:
        raise ValueError(f"unknown force field {name!r}; choose from {sorted(FORCEFIELDS)}")
    if not cutoff > 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    return FORCEFIELDS[key](cutoff=cutoff, shifted=shifted)


def source(name: str) -> str:
    """The citation of a force field's parameters."""
    return _SOURCES[name.upper()]


@dataclasses.dataclass(frozen=True)
class Guest:
    """A rigid guest molecule made of Lennard-Jones sites and point charges.

    Attributes:
        name: e.g. ``"CH4"``.
        positions: [n_sites, 3] Å, site positions in the molecule frame, centre of mass at 0.
        epsilon: [n_sites] K, LJ well depth of each site (0 for a charge-only site).
        sigma: [n_sites] Å, LJ diameter of each site.
        charges: [n_sites] e, partial charges (all zero for the LJ-only guests).
        mass: g/mol, molar mass of the molecule.
        source: citation of the model.
    """

    name: str
    positions: np.ndarray
    epsilon: np.ndarray
    sigma: np.ndarray
    charges: np.ndarray
    mass: float
    source: str

    @property
    def n_sites(self) -> int:
        return len(self.epsilon)

    @property
    def is_point(self) -> bool:
        """One LJ site at the centre: no orientation to sample."""
        return self.n_sites == 1 and not np.any(self.positions)

    @property
    def charged(self) -> bool:
        return bool(np.any(self.charges))


def _linear(name, ends, centre, bond, mass, source, with_centre_charge=False) -> Guest:
    """A linear molecule along z: two end sites at ±bond/2 and one centre site."""
    (eps_e, sig_e, q_e), (eps_c, sig_c, q_c) = ends, centre
    half = bond / 2.0
    return Guest(
        name=name,
        positions=np.array([[0.0, 0.0, -half], [0.0, 0.0, 0.0], [0.0, 0.0, half]]),
        epsilon=np.array([eps_e, eps_c, eps_e]),
        sigma=np.array([sig_e, sig_c, sig_e]),
        charges=np.array([q_e, q_c, q_e]),
        mass=mass,
        source=source,
    )


def _point(name, eps, sig, mass, source) -> Guest:
    return Guest(
        name=name,
        positions=np.zeros((1, 3)),
        epsilon=np.array([eps]),
        sigma=np.array([sig]),
        charges=np.zeros(1),
        mass=mass,
        source=source,
    )


GUESTS: dict[str, Guest] = {
    "CH4": _point("CH4", 148.0, 3.73, 16.043, "TraPPE-UA, Martin & Siepmann 1998"),
    "Kr": _point("Kr", 166.4, 3.636, 83.798, "Hirschfelder et al. 1954"),
    "Xe": _point("Xe", 221.0, 4.1, 131.293, "Hirschfelder et al. 1954"),
    "H2": _point("H2", 34.2, 2.96, 2.016, "Buch 1994, single site"),
    "He": _point("He", 10.9, 2.64, 4.0026, "Hirschfelder et al. 1954"),
    # N2: N sites carry -0.482 e, a massless centre +0.964 e (TraPPE).
    "N2": _linear("N2", (36.0, 3.31, -0.482), (0.0, 0.0, 0.964), 1.10, 28.014,
                  "TraPPE, Potoff & Siepmann 2001"),
    "CO2": _linear("CO2", (79.0, 3.05, -0.35), (27.0, 2.80, 0.70), 2 * 1.16, 44.009,
                   "TraPPE, Potoff & Siepmann 2001"),
}  # fmt: skip


def guest(name: str | Guest) -> Guest:
    """A guest model by name (case-insensitive: ``CH4``, ``Kr``, ``Xe``, ``N2``, ``H2``,
    ``CO2``, ``He``); a ``Guest`` passes through unchanged."""
    if isinstance(name, Guest):
        return name
    lookup = {k.upper(): v for k, v in GUESTS.items()}
    key = str(name).upper()
    if key not in lookup:
        raise ValueError(f"unknown guest {name!r}; choose from {sorted(GUESTS)}")
    return lookup[key]


def lorentz_berthelot(
    eps_a: jax.Array, sig_a: jax.Array, eps_b: jax.Array, sig_b: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Lorentz–Berthelot mixing of two sets of Lennard-Jones sites (any broadcastable shapes).

    .. math:: ε_{ab} = \\sqrt{ε_a ε_b}, \\qquad σ_{ab} = (σ_a + σ_b) / 2

    Args:
        eps_a, eps_b: K.  sig_a, sig_b: Å.

    Returns:
        ``(epsilon K, sigma Å)``, broadcast. The gradient stays finite where ε_a·ε_b = 0 (the
        padding atoms of ``host.pad_atoms``): a plain sqrt would give 0/0 there.
    """
    ab = eps_a * eps_b
    ok = ab > 0
    return jnp.where(ok, jnp.sqrt(jnp.where(ok, ab, 1.0)), 0.0), 0.5 * (sig_a + sig_b)


def lj_energy(
    r2: jax.Array, epsilon: jax.Array, sigma: jax.Array, cutoff: float, shifted: bool
) -> jax.Array:
    """Lennard-Jones pair energy, truncated (and optionally shifted) at ``cutoff``.

    .. math:: u(r) = 4ε[(σ/r)^{12} - (σ/r)^6] - u_c \\quad (r < r_c), \\qquad 0 \\text{ else}

    Args:
        r2: squared distance, Å² (any shape; broadcast with ``epsilon`` and ``sigma``).
        epsilon: K.  sigma: Å.
        cutoff: Å.  shifted: subtract u(r_c) so that u is continuous at the cutoff.

    Returns:
        Energy in K, same shape as the broadcast inputs. Gradient-safe at r = 0 and beyond the
        cutoff (double ``where``); r = 0 itself gives +inf.
    """
    inside = r2 < cutoff * cutoff
    safe_r2 = jnp.where(inside, r2, cutoff * cutoff)
    s6 = (sigma * sigma / safe_r2) ** 3
    u = 4.0 * epsilon * s6 * (s6 - 1.0)
    if shifted:
        c6 = (sigma * sigma / (cutoff * cutoff)) ** 3
        u = u - 4.0 * epsilon * c6 * (c6 - 1.0)
    return jnp.where(inside, u, 0.0)
