"""RASPA2 Widom insertion of one guest in one framework, run by bench_raspa.py.

    RASPA_PYTHON experiments/_raspa.py CONFIG.json

Run with a Python that has ``raspa2`` 2.0.4 installed (it compiles RASPA from source, about
7 minutes; the benchmark keeps it out of jmof's own environment). The framework force field
(per-element ε, σ), the guest and the settings come from CONFIG.json, written by the benchmark
from jmof's own tables so that both codes simulate the same model. Files go into a force-field
folder ``jmof`` and a molecule folder ``jmof`` inside RASPA2's share directory. Prints one JSON
line: Henry coefficient and RASPA's error (a 95 % interval over 5 blocks), ⟨U⟩, wall time.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from textwrap import dedent


def write_model(share: Path, config: dict) -> None:
    ff = share / "forcefield" / "jmof"
    ff.mkdir(parents=True, exist_ok=True)
    types = config["framework"]  # {symbol: [eps_K, sigma_A, mass]}
    guest = config["guest"]  # {name, eps, sigma, mass}
    pseudo = [f"{s:10s} yes {s:4s} {s:4s} 0 {m:.6f} 0.0 0.0 1.0 1.0 0 0 relative 0"
              for s, (_, _, m) in types.items()]  # fmt: skip
    name = f"jm_{guest['name']}"
    pseudo.append(f"{name:10s} yes C C 0 {guest['mass']:.6f} 0.0 0.0 1.0 1.0 0 0 relative 0")
    (ff / "pseudo_atoms.def").write_text(
        "#number of pseudo atoms\n"
        f"{len(pseudo)}\n"
        "#type print as chem oxidation mass charge polarization B-factor radii connectivity "
        "anisotropic anisotropic-type tinker-type\n" + "\n".join(pseudo) + "\n"
    )
    rules = [f"{s:10s} lennard-jones {e:.8f} {g:.8f}" for s, (e, g, _) in types.items()]
    rules.append(f"{name:10s} lennard-jones {guest['eps']:.8f} {guest['sigma']:.8f}")
    (ff / "force_field_mixing_rules.def").write_text(
        "# general rule for shifted vs truncated\nshifted\n"
        "# general rule tailcorrections\nno\n"
        f"# number of defined interactions\n{len(rules)}\n"
        "# type interaction\n" + "\n".join(rules) + "\n"
        "# general mixing rule for Lennard-Jones\nLorentz-Berthelot\n"
    )
    (ff / "force_field.def").write_text(
        "# rules to overwrite\n0\n# number of defined interactions\n0\n"
        "# mixing rules to overwrite\n0\n"
    )
    mol = share / "molecules" / "jmof"
    mol.mkdir(parents=True, exist_ok=True)
    (mol / f"{guest['name']}.def").write_text(
        dedent(f"""\
        # critical constants: Temperature [T], Pressure [Pa], and Acentric factor [-]
        190.564
        4599200.0
        0.01142
        # Number Of Atoms
        1
        # Number Of Groups
        1
        # group
        rigid
        # number of atoms
        1
        # atomic positions
        0 {name} 0.0 0.0 0.0
        # Chiral centers Bond  BondDipoles Bend  UrayBradley InvBend  Torsion Imp. Torsion Bond/Bond Stretch/Bend Bend/Bend Stretch/Torsion Bend/Torsion IntraVDW IntraCoulomb
                       0    0            0    0            0       0        0            0         0            0         0               0            0        0            0
        # Number of config moves
        0
        """)  # noqa: E501
    )


def main(config_path: str) -> None:
    import RASPA2

    config = json.loads(Path(config_path).read_text())
    share = Path(RASPA2.__file__).parent / "share" / "raspa"
    write_model(share, config)
    a, b, c = config["unit_cells"]
    script = dedent(f"""\
        SimulationType                MonteCarlo
        NumberOfCycles                {config["cycles"]}
        NumberOfInitializationCycles  0
        PrintEvery                    {config["cycles"]}
        Forcefield                    jmof
        CutOff                        {config["cutoff"]}
        ChargeMethod                  None
        UseChargesFromCIFFile         no
        Framework                     0
        FrameworkName                 streamed
        InputFileType                 cif
        UnitCells                     {a} {b} {c}
        ExternalTemperature           {config["temperature"]}

        Component 0 MoleculeName             {config["guest"]["name"]}
                    MoleculeDefinition       jmof
                    WidomProbability         1.0
                    CreateNumberOfMolecules  0
        """)
    start = time.perf_counter()
    out = RASPA2.run_script(script, Path(config["cif"]).read_text())
    seconds = time.perf_counter() - start
    number = r"([-+\d.eE]+)"
    henry = re.search(rf"\[\S+\] Average Henry coefficient:\s+{number} \+/-\s+{number}", out)
    energy = re.search(rf"\[\S+\] Average  <U_gh>_1-<U_h>_0:\s+{number} \+/-\s+{number} \[K\]",
                       out)  # fmt: skip
    if henry is None:
        raise SystemExit("no Henry coefficient in RASPA's output:\n" + out[-3000:])
    print(json.dumps({
        "henry": float(henry.group(1)), "henry_err95": float(henry.group(2)),
        "energy_K": float(energy.group(1)) if energy else None,
        "energy_err95_K": float(energy.group(2)) if energy else None,
        "seconds": seconds,
    }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
