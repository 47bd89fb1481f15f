"""Energy, forces and stress of any potential, by automatic differentiation.

A potential is any ``energy(params, graph) -> [G]`` (eV per graph) that computes edge vectors
from ``graph.positions``, ``graph.cell`` and ``graph.shifts`` inside JAX (as
:func:`jmof.graph.edge_vectors` does). Then

    forces  F_n = -∂E/∂r_n                                  [N, 3] eV/Å
    stress  σ_g = (1/V_g) ∂E_g/∂ε_g  at ε = 0                [G, 3, 3] eV/Å³

where the strain ``ε_g`` deforms graph ``g`` homogeneously: every position and every cell vector
``x -> x (I + ε)``. This is ASE's sign convention (a crystal that wants to expand has negative
stress; pressure is ``-trace(σ)/3``). The strain derivative includes the change of the periodic
images through the cell, so the stress is exact for any cell shape, also for cells thinner than
the cutoff. Nothing here is hand-derived from a model: both are gradients of the same energy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jmof.graph import Graph, edge_vectors, safe_norm

__all__ = [
    "EV_PER_A3_TO_GPA",
    "LennardJones",
    "Prediction",
    "energy_forces_stress",
    "strain_graph",
    "sum_potentials",
]

EV_PER_A3_TO_GPA = 160.21766208
"""1 eV/Å³ in GPa."""


class Prediction(NamedTuple):
    """energy [G] eV, forces [N, 3] eV/Å, stress [G, 3, 3] eV/Å³ (zero on padding)."""

    energy: jax.Array
    forces: jax.Array
    stress: jax.Array


def strain_graph(graph: Graph, strain: jax.Array) -> Graph:
    """``graph`` with positions and cell of graph ``g`` deformed by ``I + strain[g]``.

    strain: [G, 3, 3], dimensionless. Positions are row vectors: ``r -> r (I + ε)``.
    """
    deform = jnp.eye(3, dtype=strain.dtype) + strain
    positions = jnp.einsum("ni,nij->nj", graph.positions, deform[graph.node_graph])
    cell = jnp.einsum("gij,gjk->gik", graph.cell, deform)
    return dataclasses.replace(graph, positions=positions, cell=cell)


def energy_forces_stress(
    energy_fn: Callable[[object, Graph], jax.Array], params, graph: Graph, *, stress: bool = True
) -> Prediction:
    """Energy, forces and (with ``stress``) the virial stress of every graph of a padded batch.

    Args:
        energy_fn: ``energy_fn(params, graph) -> [G]`` eV, e.g. a flax module's ``apply``.
        params: its parameters.
        graph: a (padded) :class:`jmof.graph.Graph` with float positions and cell.
        stress: also differentiate with respect to strain (one more input of the same backward
            pass; the cost is small). Without it the returned stress is zeros.

    Returns:
        :class:`Prediction`; forces on padding nodes and stress of padding graphs are 0.
    """
    positions = jnp.asarray(graph.positions)
    cell = jnp.asarray(graph.cell, positions.dtype)
    graph = dataclasses.replace(graph, positions=positions, cell=cell)
    strain = jnp.zeros(cell.shape, positions.dtype)

    def total(positions, strain):
        deformed = dataclasses.replace(graph, positions=positions)
        if stress:
            deformed = strain_graph(deformed, strain)
        energy = energy_fn(params, deformed)
        return jnp.sum(energy), energy

    grads, energy = jax.grad(total, argnums=(0, 1), has_aux=True)(positions, strain)
    node_mask = jnp.asarray(graph.node_mask)[:, None]
    forces = jnp.where(node_mask, -grads[0], 0.0)
    graph_mask = jnp.asarray(graph.graph_mask)
    volume = jnp.where(graph_mask, jnp.abs(jnp.linalg.det(cell)), 1.0)
    virial = 0.5 * (grads[1] + jnp.swapaxes(grads[1], -1, -2))
    sigma = jnp.where(graph_mask[:, None, None], virial / volume[:, None, None], 0.0)
    return Prediction(energy=energy, forces=forces, stress=sigma)


@dataclasses.dataclass(frozen=True)
class LennardJones:
    """Lennard-Jones pairs with Lorentz–Berthelot mixing, truncated and shifted at ``cutoff``.

    ``E = ½ Σ_edges 4 ε_ij [(σ_ij/r)¹² − (σ_ij/r)⁶] − (same at r = cutoff)`` for ``r < cutoff``,
    with ``ε_ij = sqrt(ε_i ε_j)`` and ``σ_ij = (σ_i + σ_j)/2``. The ½ is because the radius graph
    holds every pair twice (both directions). The parameters are a pytree, so energies can be
    differentiated with respect to them:

        lj = LennardJones(cutoff=8.0)
        params = lj.params({6: (0.0045, 3.43), 8: (0.0026, 3.12)})   # Z: (ε eV, σ Å)
        energy = lj.apply(params, graph)                              # [G] eV

    Attributes:
        cutoff: Å; the graph must hold every pair within it.
    """

    cutoff: float

    def params(self, table: dict[int, tuple[float, float]], dtype=jnp.float64) -> dict:
        """``{"epsilon": [119] eV, "sigma": [119] Å}`` from ``{Z: (ε, σ)}``; other elements get
        ε = 0 (no interaction)."""
        epsilon = [0.0] * 119
        sigma = [1.0] * 119
        for z, (eps, sig) in table.items():
            epsilon[int(z)], sigma[int(z)] = float(eps), float(sig)
        return {"epsilon": jnp.asarray(epsilon, dtype), "sigma": jnp.asarray(sigma, dtype)}

    def apply(self, params: dict, graph: Graph) -> jax.Array:
        """[G] eV."""
        species_i = graph.species[graph.senders]
        species_j = graph.species[graph.receivers]
        epsilon = jnp.sqrt(params["epsilon"][species_i] * params["epsilon"][species_j])
        sigma = 0.5 * (params["sigma"][species_i] + params["sigma"][species_j])
        lengths = safe_norm(edge_vectors(graph))
        inside = jnp.asarray(graph.edge_mask) & (lengths < self.cutoff) & (lengths > 0)
        r = jnp.where(inside, lengths, self.cutoff)

        def lj(r):
            x6 = (sigma / r) ** 6
            return 4.0 * epsilon * (x6 * x6 - x6)

        pair = jnp.where(inside, lj(r) - lj(jnp.full_like(r, self.cutoff)), 0.0)
        n_graph = graph.n_node.shape[0]
        edge_graph = graph.node_graph[graph.receivers]
        return 0.5 * jax.ops.segment_sum(pair, edge_graph, num_segments=n_graph)


def sum_potentials(*energy_fns: Callable[[object, Graph], jax.Array]):
    """``energy(params_tuple, graph) = Σ_k energy_fns[k](params_tuple[k], graph)``: e.g. a
    machine-learned potential plus a Lennard-Jones dispersion term. All must accept the same
    graph (build it at the largest cutoff)."""

    def energy(params, graph):
        if len(params) != len(energy_fns):
            raise ValueError(f"{len(energy_fns)} potentials but {len(params)} parameter sets")
        return sum(fn(p, graph) for fn, p in zip(energy_fns, params, strict=True))

    return energy
