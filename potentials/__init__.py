"""Equivariant interatomic potentials: NequIP and MACE on e3nn-jax, energy/forces/stress, JAX-MD and
ASE integration, teachers (SevenNet-0, CHGNet; ``[torch]`` extra) and distillation.

    from potentials import NequIPConfig, distill, load
    student = distill(labelled_dataset, out_dir="runs/student", config=NequIPConfig(...))
    atoms.calc = load("runs/student").calculator()
    atoms.calc = load("sevennet-0").calculator()       # SevenNet-0, converted (convert/)
"""

from jmof.potential import energy_forces_stress
from potentials.distill import LossWeights, Potential, distill, evaluate, load, predict
from potentials.mace import MACEConfig
from potentials.nequip import NequIPConfig

__all__ = [
    "LossWeights",
    "MACEConfig",
    "NequIPConfig",
    "Potential",
    "distill",
    "energy_forces_stress",
    "evaluate",
    "load",
    "predict",
]
