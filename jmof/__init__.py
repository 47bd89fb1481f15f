"""jmof: differentiable modelling of metal-organic frameworks and other porous materials.

The shared core: crystal structures, periodic graphs, datasets, training and checkpoints.
"""

from jmof.checkpoint import load
from jmof.structure import Crystal, StructureError, StructureWarning, read, validate, write

__version__ = "0.1.0"

__all__ = [
    "Crystal",
    "StructureError",
    "StructureWarning",
    "__version__",
    "load",
    "read",
    "validate",
    "write",
]
