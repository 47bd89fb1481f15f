"""ASE calculator for jmof potentials: energy, forces and stress for ASE optimisers and MD.

    from potentials.ase import JmofCalculator
    atoms.calc = JmofCalculator("runs/mil53")           # a distill() directory or model dir
    ase.optimize.BFGS(atoms).run(fmax=0.05)

Each call builds the radius graph on the host and pads it to bucketed sizes
(:func:`jmof.graph.batch`), so a geometry optimisation or an MD run compiles once or twice,
not at every step.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from jmof.graph import batch, radius_graph
from jmof.structure import Crystal

__all__ = ["JmofCalculator"]


class JmofCalculator(Calculator):
    """An ASE calculator of a jmof potential.

    Args:
        model: a directory written by :func:`potentials.distill.distill` (or its ``model``
            subdirectory, or any ``jmof.checkpoint.save_model`` directory of a potential
            config), the name of a shipped potential ("sevennet-0"), or a loaded
            :class:`potentials.distill.Potential`.
        dtype: "float32" or "float64" for the evaluation (float64 needs
            ``jax_enable_x64``); default: the config's.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model, *, dtype: str | None = None, **kwargs):
        super().__init__(**kwargs)
        from potentials.distill import Potential, _compiled, load

        potential = model if isinstance(model, Potential) else load(model)
        potential = potential.astype(dtype or potential.config.dtype)
        self.potential = potential
        self.config = potential.config
        self.params = potential.params
        self._dtype = jnp.dtype(self.config.dtype)
        self._efs = _compiled(self.config)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if not all(self.atoms.pbc):
            raise ValueError("JmofCalculator needs a cell periodic along a, b and c")
        crystal = Crystal.from_ase(self.atoms)
        self.config.check_species(crystal.species, name=self.atoms.get_chemical_formula())
        graph = batch([radius_graph(crystal, self.config.cutoff)])
        graph = dataclasses.replace(
            jax.tree.map(jnp.asarray, graph),
            positions=jnp.asarray(graph.positions, self._dtype),
            cell=jnp.asarray(graph.cell, self._dtype),
        )
        energy, forces, stress = self._efs(self.params, graph)
        n = crystal.n_atoms
        self.results["energy"] = self.results["free_energy"] = float(energy[0])
        self.results["forces"] = np.asarray(forces[:n], np.float64)
        s = np.asarray(stress[0], np.float64)
        self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
