"""Deep ensembles trained at once: K members' params stacked on a leading axis and ``vmap``-ed.

    keys = jax.random.split(key, K)
    stacked = init_ensemble(config, keys, graph)            # member k: build().init(keys[k], graph)
    result = jmof.train.fit(ensemble_loss_fn(cgcnn.loss_fn(config)), stacked, loader,
                            optimizer=ensemble_optimizer(optax.adam(1e-3)),
                            config=EnsembleConfig(config, K), ...)
    mean, std = predict_ensemble(config, result.best_params, graph)   # [G, T] each

Why this trains K independent models, exactly: the ensemble loss is the *sum* of the members'
losses on the same batch, and members share no parameter, so the gradient with respect to member
k's params is member k's own gradient (a mean would scale it by 1/K, which Adam's ``eps`` does
not ignore). The optimiser is ``vmap``-ed over the member axis by :func:`ensemble_optimizer`, so
every piece of optimiser state is per member. That matters beyond Adam's element-wise moments:
``optax.clip_by_global_norm`` on the stacked tree would clip all members by the norm of their
*joint* gradient, coupling them; vmapped, each member is clipped by its own norm, as in a separate
training. The same holds for every transform that takes a norm over more than one element: over
the whole tree (global-norm clipping) or over a whole leaf, which here spans all members (the
per-layer trust ratios of LARS and LAMB). Element-wise transforms (Adam's moments, weight decay,
schedules) are equivalent either way.

A training of the ensemble is a deterministic function of the K keys and the batches; member k
equals the model trained alone from ``keys[k]`` on the same batches with the same (un-vmapped)
optimiser, up to floating-point rounding (the tests find agreement to 1e-10 relative in float64
after several clipped AdamW steps).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from predictors.standardize import destandardize

__all__ = [
    "EnsembleConfig",
    "ensemble_loss_fn",
    "ensemble_optimizer",
    "init_ensemble",
    "member",
    "predict_ensemble",
    "stack",
]


@dataclasses.dataclass(frozen=True)
class EnsembleConfig:
    """An ensemble of ``n_members`` models of one config, stored in checkpoints.

    ``build()`` returns a linen module whose ``apply(stacked_params, graph)`` gives the members'
    outputs ``[K, G, T]`` in model units; its params are the members' trees stacked on axis 0
    (the layout of :func:`init_ensemble`).
    """

    model: Any  # a member config (e.g. CGCNNConfig): a frozen dataclass with build()
    n_members: int

    def __post_init__(self):
        if self.n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {self.n_members}")

    def build(self) -> nn.Module:
        module = self.model.build()
        stacked_cls = nn.vmap(
            type(module),
            in_axes=None,
            out_axes=0,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            axis_size=self.n_members,
        )
        fields = {
            f.name: getattr(module, f.name)
            for f in dataclasses.fields(module)
            if f.init and f.name not in ("parent", "name")
        }
        return stacked_cls(**fields)


def _member_config(config):
    return config.model if isinstance(config, EnsembleConfig) else config


def init_ensemble(config, keys: jax.Array, graph) -> Any:
    """Stacked params ``[K, ...]``: member k is ``config.build().init(keys[k], graph)``.

    config: a member config (or an :class:`EnsembleConfig`); keys: [K] PRNG keys.
    """
    model = _member_config(config).build()
    return jax.jit(jax.vmap(model.init, in_axes=(0, None)))(keys, graph)


def stack(members: Sequence[Any]) -> Any:
    """Stack K param trees of one structure into one tree with a leading member axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *members)


def member(stacked: Any, k: int) -> Any:
    """Member ``k``'s params out of a stacked tree."""
    return jax.tree.map(lambda x: x[k], stacked)


def ensemble_loss_fn(loss_fn: Callable) -> Callable:
    """A ``loss_fn(stacked_params, batch, key)`` for :func:`jmof.train.fit` from a member's.

    All members see the same batch; member k gets the key ``fold_in(key, k)`` (members with
    dropout or noise draw independently), or None when ``key`` is None. The loss is the sum of
    the members' losses (so that each member's gradient is its own, see the module docstring);
    metrics are the members' means, plus ``member_loss`` (the mean member loss, comparable to a
    single model's loss) and ``weight`` from member 0 (all members see the same entries).
    """

    def loss(stacked, batch, key):
        if key is None:  # a deterministic member loss that takes no key
            keys, key_axis = None, None
        else:
            n_members = jax.tree.leaves(stacked)[0].shape[0]
            keys = jax.vmap(lambda k: jax.random.fold_in(key, k))(jnp.arange(n_members))
            key_axis = 0
        losses, metrics = jax.vmap(loss_fn, in_axes=(0, None, key_axis))(stacked, batch, keys)
        out = {name: jnp.mean(value) for name, value in metrics.items() if name != "weight"}
        out["member_loss"] = jnp.mean(losses)
        if "weight" in metrics:
            out["weight"] = metrics["weight"][0]
        return jnp.sum(losses), out

    return loss


def ensemble_optimizer(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """``optimizer`` applied to each member separately: ``init`` and ``update`` ``vmap``-ed over
    the leading member axis of params, gradients and state (per-member step counts, moments,
    global norms and schedules)."""

    def init_fn(params):
        return jax.vmap(optimizer.init)(params)

    def update_fn(updates, state, params=None):
        if params is None:
            return jax.vmap(lambda u, s: optimizer.update(u, s))(updates, state)
        return jax.vmap(optimizer.update)(updates, state, params)

    return optax.GradientTransformation(init_fn, update_fn)


def predict_ensemble(config, stacked_params, graph) -> tuple[jax.Array, jax.Array]:
    """Mean and spread of the members' predictions in original units.

    config: the member config (or an :class:`EnsembleConfig`) with ``mean``, ``std``, ``kinds``.

    Returns:
        ``(mean, std)``: [G, T] each; the members' mean and standard deviation (over K, ddof 0)
        in original units; for classification targets, of the probability of class 1.
    """
    config = _member_config(config)
    model = config.build()
    outputs = jax.vmap(model.apply, in_axes=(0, None))(stacked_params, graph)  # [K, G, T]
    values = destandardize(outputs, config.mean, config.std, config.kinds)
    return jnp.mean(values, axis=0), jnp.std(values, axis=0)
