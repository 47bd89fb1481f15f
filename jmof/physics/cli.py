"""``jmof grid``, ``jmof henry`` and ``jmof geometry``: porous-material physics at the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jmof.cli import CLIError, _print_records

_GUESTS = "CH4, Kr, Xe, N2, H2, CO2 or He"


def _forcefield(name: str, cutoff: float, shifted: bool = True):
    from jmof.physics import forcefield as ffm

    if not cutoff > 0:
        raise CLIError(f"--cutoff must be positive, got {cutoff}")
    return ffm.forcefield(name, cutoff=cutoff, shifted=shifted)


def grid(
    file: Annotated[Path, typer.Argument(help="Structure file.")],
    guest: Annotated[str, typer.Option(help="Single-site probe: CH4, Kr, Xe, H2 or He.")] = "CH4",
    spacing: Annotated[float, typer.Option(help="Largest grid spacing in Å.")] = 0.5,
    forcefield: Annotated[str, typer.Option(help="UFF or DREIDING.")] = "UFF",
    cutoff: Annotated[float, typer.Option(help="LJ cutoff in Å.")] = 12.8,
    temperature: Annotated[
        float, typer.Option("--T", help="Temperature (K) for the Boltzmann average.")
    ] = 298.0,
    out: Annotated[Path | None, typer.Option(help="Save the grid (.npz).")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="PNG of the slice through the lowest-energy point.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
):
    """Energy grid of a probe in a framework: statistics, optional .npz and slice plot."""
    import numpy as np

    from jmof.physics import descriptors
    from jmof.physics import forcefield as ffm
    from jmof.physics import grid as gridm
    from jmof.structure import read

    if not spacing > 0:
        raise CLIError(f"--spacing must be positive, got {spacing}")
    crystal = read(file)
    g = gridm.energy_grid(
        crystal, guest, _forcefield(forcefield, cutoff), spacing=spacing, progress=True
    )
    values = np.asarray(g.values, np.float64)
    to_kj = ffm.K_IN_KJ_PER_MOL
    record = {
        "name": str(file),
        "guest": g.guest,
        "forcefield": g.forcefield,
        "shape": list(g.shape),
        "spacing_A": [round(float(s), 4) for s in g.spacing],
        "E_min_kJ_mol": float(values.min() * to_kj),
        "attractive_fraction": float((values < 0).mean()),
        "boltzmann_average": float(descriptors.average_boltzmann_factor(g, temperature)),
        "T_K": temperature,
    }
    if out is not None:
        g.save(out)
        record["saved"] = str(out)
    if plot is not None:
        _plot_slice(g, plot)
        record["plot"] = str(plot)
    _print_records([record], as_json)


def _plot_slice(g, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from jmof.physics.forcefield import K_IN_KJ_PER_MOL

    values = np.asarray(g.values, np.float64) * K_IN_KJ_PER_MOL
    k = np.unravel_index(np.argmin(values), values.shape)[2]
    plane = np.ma.masked_greater(values[:, :, k], 0.0)  # repulsive: the framework, left white
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    fig, ax = plt.subplots(figsize=(5, 4.5))
    image = ax.imshow(plane.T, origin="lower", cmap=cmap, extent=(0, 1, 0, 1))
    fig.colorbar(image, ax=ax, label=f"{g.guest} energy (kJ/mol); white: E > 0")
    ax.set_xlabel("fractional a")
    ax.set_ylabel("fractional b")
    ax.set_title(f"slice c = {k / values.shape[2]:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def henry(
    files: Annotated[list[Path], typer.Argument(help="Structure files.")],
    guest: Annotated[str, typer.Option(help=f"{_GUESTS}; several comma-separated.")] = "CH4",
    temperature: Annotated[float, typer.Option("--T", help="Temperature in K.")] = 298.0,
    method: Annotated[str, typer.Option(help="direct or grid.")] = "direct",
    insertions: Annotated[int, typer.Option("--n", help="Widom insertions.")] = 20_000,
    blocks: Annotated[int, typer.Option(help="Blocks for the error bars.")] = 5,
    forcefield: Annotated[str, typer.Option(help="UFF or DREIDING.")] = "UFF",
    cutoff: Annotated[float, typer.Option(help="LJ cutoff in Å.")] = 12.8,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
):
    """Henry coefficient, interaction energy and heat of adsorption by Widom insertion
    (errors: 1σ block standard errors). Several single-site guests share one pass."""
    import jax

    from jmof.physics import forcefield as ffm
    from jmof.physics import widom
    from jmof.structure import read

    if insertions < blocks:
        raise CLIError(f"--n ({insertions}) must be at least --blocks ({blocks})")
    guests = [ffm.guest(name.strip()) for name in guest.split(",") if name.strip()]
    if not guests:
        raise CLIError("--guest is empty")
    ff = _forcefield(forcefield, cutoff)
    records = []
    for k, path in enumerate(files):
        crystal = read(path)
        key = jax.random.key(seed + k)
        options = dict(n_insertions=insertions, n_blocks=blocks, key=key, progress=True)
        if method == "direct" and len(guests) > 1 and all(g.is_point for g in guests):
            results = widom.henry_coefficients(crystal, guests, temperature, ff, **options)
            results = [results[g.name] for g in guests]
        else:
            results = [
                widom.henry_coefficient(crystal, g, temperature, ff, method=method, **options)
                for g in guests
            ]
        for r in results:
            records.append(
                {
                    "name": str(path),
                    "guest": r.guest,
                    "T_K": r.temperature,
                    "K_H_mol_kg_Pa": r.henry,
                    "K_H_err": r.henry_err,
                    "U_kJ_mol": r.energy,
                    "U_err": r.energy_err,
                    "q_st_kJ_mol": r.heat,
                    "boltzmann": r.boltzmann,
                }
            )
    _print_records(records, as_json)


def geometry(
    files: Annotated[list[Path], typer.Argument(help="Structure files.")],
    probe: Annotated[float, typer.Option(help="Probe radius in Å (ASA, AV_VF).")] = 1.86,
    spacing: Annotated[float, typer.Option(help="Distance-grid spacing in Å.")] = 0.2,
    helium: Annotated[
        bool, typer.Option(help="Also the helium void fraction (Widom, 298 K).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
):
    """Density, pore diameters (LCD, PLD, LFPD), accessible surface area and void fractions."""
    from jmof.physics import geometry as geo
    from jmof.structure import read

    if probe < 0 or not spacing > 0:
        raise CLIError(f"need --probe ≥ 0 and --spacing > 0, got {probe}, {spacing}")
    records = []
    for path in files:
        g = geo.geometry(read(path), probe, spacing, helium=helium)
        records.append(
            {
                "name": str(path),
                "density_g_cm3": g.density,
                "LCD_A": g.lcd,
                "PLD_A": g.pld,
                "LFPD_A": g.lfpd,
                "ASA_m2_g": g.asa_m2_g,
                "ASA_m2_cm3": g.asa_m2_cm3,
                "AV_VF": g.av_vf,
                "GVF": g.gvf,
                **({"He_VF": g.he_vf} if helium else {}),
            }
        )
    _print_records(records, as_json)
