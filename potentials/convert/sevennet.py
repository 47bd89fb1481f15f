"""SevenNet checkpoints (e.g. SevenNet-0) as jmof NequIP models: config and weights.

    from potentials.convert.sevennet import convert
    convert("models/sevennet-0")                       # torch needed for this step only
    potential = potentials.load("models/sevennet-0")   # no torch from here on

SevenNet (Park et al., J. Chem. Theory Comput. 20, 4857 (2024)) is a NequIP: the same blocks as
:mod:`potentials.nequip`, with settings our config expresses (``group="SO3"`` for
``is_parity=False``, the XPLOR envelope, learned Bessel frequencies, SiLU gates, a linear
self-connection, per-species shift and scale). What the conversion has to reconcile, each
folded into the weights so that the model itself stays one NequIP:

- **Edge direction.** SevenNet's edge vector points from the receiving atom to the sender,
  ours from the sender to the receiver: the spherical harmonic of degree l changes by
  ``(-1)^l``, so the radial-network outputs of paths through an odd filter degree change sign.
- **Bessel prefactor.** SevenNet's basis is ``(2/c) sin(w r)/r``, ours ``sqrt(2/c) sin(w r)/r``:
  the first radial layer absorbs ``sqrt(2/c)``.
- **Activation normalisation.** Both libraries divide activations by their root mean square
  under a unit normal, but e3nn (torch) estimates it from 10⁶ random samples and e3nn-jax from
  10⁶ quantiles; the constants differ by ~0.1 %. Every consumer of an activation (the next
  radial layer; the linear maps reading a gate's output) absorbs the ratio.
- **Layouts.** e3nn's ``Linear`` stores one flat vector of ``(mul_in, mul_out)`` blocks per
  pair of equal irreps; e3nn-jax stores one matrix per pair of distinct irreps of the
  regrouped input and output. The blocks are reassembled in the order both libraries sort
  irreps (stable by irrep), which also orders the tensor-product paths identically.

Only checkpoints with this structure convert (SevenNet-0 and the other single-modality
NequIP-type SevenNet models with ``irreps_manual`` of equal hidden irreps); others raise
ValueError naming the setting.
"""

from __future__ import annotations

from pathlib import Path

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np

from jmof import checkpoint
from potentials.nequip import NequIPConfig

__all__ = ["convert", "nequip_config", "nequip_params", "read_checkpoint", "SEVENNET_MODELS"]

#: Checkpoints shipped in the ``sevenn`` package, by the name SevenNet's calculator uses.
SEVENNET_MODELS = {
    "7net-0": "SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
    "7net-0_22May2024": "SevenNet_0__22May2024/checkpoint_sevennet_0.pth",
    "7net-l3i5": "SevenNet_l3i5/checkpoint_l3i5.pth",
}

_JAX_ACTS = {"silu": jax.nn.silu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}


def read_checkpoint(path: str | Path = "7net-0") -> tuple[dict, dict[str, np.ndarray]]:
    """(config, state) of a SevenNet checkpoint: a path to a ``.pth`` file or the name of one
    shipped in ``sevenn`` (:data:`SEVENNET_MODELS`). The state maps each tensor name to a
    float64 array, as ``sevenn`` itself loads it (its loader reorders and re-signs the
    convolution weights of checkpoints written by older versions). Needs the ``[torch]``
    extra."""
    try:
        import sevenn.util
    except ImportError as err:
        raise ImportError(
            "reading a SevenNet checkpoint needs torch and sevenn: pip install 'jmof[torch]'"
        ) from err
    if str(path) in SEVENNET_MODELS:
        shipped = Path(sevenn.util.__file__).parent / "pretrained_potentials"
        path = shipped / SEVENNET_MODELS[str(path)]
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such SevenNet checkpoint")
    try:
        ckpt = sevenn.util.load_checkpoint(path)
        config = dict(ckpt.config)
    except Exception as err:  # torch.load and sevenn raise many types for a foreign file
        raise ValueError(f"{path}: not a SevenNet checkpoint ({err})") from err
    model = ckpt.build_model()
    state = {
        k: v.detach().cpu().double().numpy()
        for k, v in model.state_dict().items()
        if v.is_floating_point()
    }
    return config, state


def _require(condition: bool, setting: str) -> None:
    if not condition:
        raise ValueError(f"SevenNet checkpoint not convertible: {setting}")


def nequip_config(config: dict, state: dict[str, np.ndarray], dtype: str = "float32"):
    """The :class:`NequIPConfig` of a SevenNet checkpoint (``read_checkpoint``)."""
    n_layers = int(config["num_convolution_layer"])
    sc = config.get("self_connection_type", "nequip")
    _require(config.get("interaction_type", "nequip") == "nequip", "interaction_type")
    _require(not config.get("use_modality", False), "multi-modal models are not supported")
    _require(not config.get("readout_as_fcn", False), "readout_as_fcn")
    _require(not config.get("use_bias_in_linear", False), "use_bias_in_linear")
    _require(
        sc == "linear" or (isinstance(sc, list) and set(sc) == {"linear"}),
        f"self_connection_type {sc!r} (only 'linear')",
    )
    _require(config["radial_basis"]["radial_basis_name"] == "bessel", "radial basis")
    _require(config.get("act_radial", "silu") == "silu", "act_radial")
    _require(dict(config["act_scalar"]) == {"e": "silu", "o": "tanh"}, "act_scalar")
    gate = dict(config["act_gate"])
    _require(gate.get("o", "tanh") == "tanh" and gate["e"] in ("silu", "sigmoid"), "act_gate")
    _require(config.get("lmax_edge", -1) in (-1, config["lmax"]), "lmax_edge")
    _require(config.get("_normalize_sph", True), "_normalize_sph")

    irreps = [e3nn.Irreps(i) for i in config["irreps_manual"]]
    hidden = irreps[1]
    scalars = hidden.filter(keep=["0e"])
    _require(len(irreps) == n_layers + 1, "irreps_manual length")
    _require(irreps[0] == scalars and irreps[-1] == scalars, "irreps_manual ends")
    _require(all(i == hidden for i in irreps[1:-1]), "irreps_manual must repeat one irreps")

    denominators = {float(state[f"{t}_convolution.denominator"][0]) for t in range(n_layers)}
    _require(len(denominators) == 1, "one conv_denominator for all layers")

    cutoff = float(config["cutoff"])
    envelope = config["cutoff_function"]
    if envelope["cutoff_function_name"] == "XPLOR":
        env = dict(envelope="xplor", cutoff_on=float(envelope["cutoff_on"]))
    else:
        _require(envelope["cutoff_function_name"] == "poly_cut", "cutoff_function")
        env = dict(envelope="polynomial", envelope_p=int(envelope["poly_cut_p_value"]))

    type_map = {int(z): int(i) for z, i in config["_type_map"].items()}
    elements = tuple(sorted(type_map, key=type_map.get))
    shift = state["rescale_atomic_energy.shift"].reshape(-1)
    scale = state["rescale_atomic_energy.scale"].reshape(-1)
    if shift.size == 1:
        shift = np.full(len(elements), shift[0])
    scale_field = float(scale[0]) if scale.size == 1 else tuple(float(s) for s in scale)
    _require(len(shift) == len(elements), "shift per species")
    return NequIPConfig(
        elements=elements,
        cutoff=cutoff,
        n_layers=n_layers,
        l_max=int(config["lmax"]),
        group="O3" if config["is_parity"] else "SO3",
        hidden_irreps=str(hidden),
        n_basis=int(config["radial_basis"]["bessel_basis_num"]),
        trainable_bessel=True,
        radial_hidden=tuple(int(w) for w in config["weight_nn_hidden_neurons"]),
        avg_num_neighbors=denominators.pop(),
        self_connection="linear",
        readout_hidden=irreps[-1].dim // 2,
        gate_act=gate["e"],
        atomic_energies=tuple(float(s) for s in shift),
        scale=scale_field,
        dtype=dtype,
        **env,
    )


def _torch_rms_inverse(name: str) -> float:
    """e3nn (torch)'s normalisation constant of an activation: ``1 / rms`` under N(0, 1)."""
    import torch
    from e3nn.math import normalize2mom

    fn = {"silu": torch.nn.functional.silu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[name]
    norm = normalize2mom(fn)
    return 1.0 if norm._is_id else float(norm.cst)


def _activation_ratio(name: str) -> float:
    """(e3nn torch's normalised activation) / (e3nn-jax's), a constant. e3nn-jax's constant is
    taken as it is computed in float64 (in float32 it is off by ~1e-6)."""
    fn = _JAX_ACTS[name]
    with jax.enable_x64(True):
        x = jnp.asarray(1.0, jnp.float64)
        jax_rms = float(fn(x) / e3nn.normalize_function(fn)(x))
    return _torch_rms_inverse(name) * jax_rms


def _linear_blocks(flat, irreps_in, irreps_out) -> dict[tuple[int, int], np.ndarray]:
    """e3nn (torch) ``o3.Linear`` weights, one flat vector, as ``{(i_in, i_out): [mul_in,
    mul_out]}`` over the entries (not simplified) of the two irreps."""
    blocks, offset = {}, 0
    for i, (mul_in, ir_in) in enumerate(irreps_in):
        for j, (mul_out, ir_out) in enumerate(irreps_out):
            if ir_in == ir_out:
                size = mul_in * mul_out
                blocks[i, j] = flat[offset : offset + size].reshape(mul_in, mul_out)
                offset += size
    if offset != flat.size:
        raise ValueError(f"{irreps_in} -> {irreps_out}: {flat.size} weights, expected {offset}")
    return blocks


def _jax_linear(flat, irreps_in, irreps_out, row_scale=None) -> dict[str, np.ndarray]:
    """The e3nn-jax ``Linear`` parameters equal to an e3nn ``o3.Linear`` (flat weights) between
    the same irreps. ``row_scale`` [irreps_in.dim // ir.dim per entry] multiplies the input
    channels (folding a constant that scales the input)."""
    irreps_in, irreps_out = e3nn.Irreps(irreps_in), e3nn.Irreps(irreps_out)
    blocks = _linear_blocks(flat, irreps_in, irreps_out)
    params = {}
    grouped_in, grouped_out = irreps_in.regroup(), irreps_out.regroup()
    channel = np.cumsum([0] + [mul for mul, _ in irreps_in])
    for a, (mul_a, ir_a) in enumerate(grouped_in):
        for b, (mul_b, ir_b) in enumerate(grouped_out):
            if ir_a != ir_b:
                continue
            rows = [i for i, (_, ir) in enumerate(irreps_in) if ir == ir_a]
            cols = [j for j, (_, ir) in enumerate(irreps_out) if ir == ir_b]
            w = np.concatenate(
                [np.concatenate([blocks[i, j] for j in cols], axis=1) for i in rows], axis=0
            )
            if row_scale is not None:
                scale = np.concatenate([row_scale[channel[i] : channel[i + 1]] for i in rows])
                w = w * scale[:, None]
            params[f"w[{a},{b}] {mul_a}x{ir_a},{mul_b}x{ir_b}"] = w
    return params


def _paths(irreps_x: e3nn.Irreps, irreps_filter: e3nn.Irreps, keep: e3nn.Irreps):
    """The convolution's paths as SevenNet (and e3nn-jax's ``tensor_product``) order them:
    ``[(mul, ir_out, l_filter)]`` stably sorted by ``ir_out``."""
    paths = []
    for mul, ir_x in irreps_x:
        for _, ir_f in irreps_filter:
            for ir_out in ir_x * ir_f:
                if ir_out in keep:
                    paths.append((mul, ir_out, ir_f.l))
    order = sorted(range(len(paths)), key=lambda k: (paths[k][1], k))
    return [paths[k] for k in order]


def _gate_irreps(irreps_out: e3nn.Irreps) -> tuple[e3nn.Irreps, np.ndarray]:
    """(irreps before an e3nn ``Gate`` with output ``irreps_out``: scalars + gates + gated,
    sorted and simplified as e3nn's ``Gate`` takes them; the irrep of the gates)."""
    scalars = e3nn.Irreps([(m, ir) for m, ir in irreps_out if ir.l == 0])
    gated = e3nn.Irreps([(m, ir) for m, ir in irreps_out if ir.l > 0])
    gate_ir = "0e" if e3nn.Irrep("0e") in [ir for _, ir in scalars] else "0o"
    gates = e3nn.Irreps([(m, gate_ir) for m, _ in gated])
    return (scalars + gates + gated).regroup(), gate_ir


def nequip_params(config: dict, state: dict[str, np.ndarray], nequip: NequIPConfig) -> dict:
    """The ``{"params": ...}`` of :class:`NequIP` (config ``nequip``, from
    :func:`nequip_config`) equal to a SevenNet state dict, in float64: the folded constants
    make them differ from SevenNet's float32 weights in the last bits, and rounding them back
    to float32 would cost parity in float64 (errors ~1e-5 eV/atom instead of ~1e-9)."""
    n_layers = nequip.n_layers
    irreps = [e3nn.Irreps(i) for i in config["irreps_manual"]]
    parity = 1 if nequip.group == "SO3" else -1
    sh = e3nn.Irreps.spherical_harmonics(nequip.l_max, p=parity)
    gate_e = dict(config["act_gate"])["e"]
    ratio = {name: _activation_ratio(name) for name in ("silu", "tanh", gate_e)}

    def activation_scale(irreps_out: e3nn.Irreps) -> np.ndarray:
        """Per channel of a gate's output, torch/jax ratio of the activation that made it."""
        _, gate_ir = _gate_irreps(irreps_out)
        gate_ratio = ratio[gate_e] if gate_ir == "0e" else ratio["tanh"]
        out = []
        for mul, ir in irreps_out:
            if ir.l == 0:
                out.append(np.full(mul, ratio["silu"] if ir.p == 1 else ratio["tanh"]))
            else:
                out.append(np.full(mul, gate_ratio))
        return np.concatenate(out)

    params: dict = {
        "bessel_frequencies": state["edge_embedding.basis_function.coeffs"],
        "embed": _jax_linear(
            state["onehot_to_feature_x.linear.weight"],
            f"{len(nequip.elements)}x0e",
            irreps[0],
        ),
    }
    prefactor = np.sqrt(2.0 / nequip.cutoff)  # SevenNet's 2/c over our sqrt(2/c)
    for t in range(n_layers):
        irreps_x, irreps_out = irreps[t], irreps[t + 1]
        before_gate, _ = _gate_irreps(irreps_out)
        keep = e3nn.Irreps([(1, ir) for ir in sorted({ir for _, ir in irreps_out})])
        paths = _paths(irreps_x, sh, keep)
        irreps_mid = e3nn.Irreps([(mul, ir) for mul, ir, _ in paths])
        # The input of this block is the previous gate's output (the embedding for t = 0).
        rows = activation_scale(irreps_x) if t > 0 else None
        p = f"{t}_"
        signs = np.concatenate([np.full(mul, (-1.0) ** l) for mul, _, l in paths])
        layer = {
            "self_connection": _jax_linear(
                state[p + "self_connection_intro.linear.weight"], irreps_x, before_gate, rows
            ),
            "linear_up": _jax_linear(
                state[p + "self_interaction_1.linear.weight"], irreps_x, irreps_x, rows
            ),
            "linear_down": _jax_linear(
                state[p + "self_interaction_2.linear.weight"], irreps_mid, before_gate
            ),
            "radial": {},
        }
        n_dense = len(nequip.radial_hidden) + 1
        for k in range(n_dense):
            w = state[f"{p}convolution.weight_nn.layer{k}.weight"]
            if k == 0:
                w = w * prefactor
            else:
                w = w * ratio["silu"]
            if k == n_dense - 1:
                _require(w.shape[1] == signs.size, f"layer {t}: radial outputs vs paths")
                w = w * signs[None, :]
            layer["radial"][f"Dense_{k}"] = {"kernel": w}
        params[f"layer_{t}"] = layer
    params["readout_hidden"] = _jax_linear(
        state["reduce_input_to_hidden.linear.weight"],
        irreps[-1],
        f"{nequip.readout_hidden}x0e",
        activation_scale(irreps[-1]),
    )
    params["readout"] = _jax_linear(
        state["reduce_hidden_to_energy.linear.weight"], f"{nequip.readout_hidden}x0e", "0e"
    )
    return {"params": jax.tree.map(lambda a: np.asarray(a, np.float64), params)}


def convert(
    out_dir: str | Path, model: str | Path = "7net-0", dtype: str = "float32"
) -> tuple[NequIPConfig, dict]:
    """Convert a SevenNet checkpoint (a shipped name or a ``.pth`` path) into a jmof model
    directory ``out_dir`` (``jmof.checkpoint.save_model``), loadable without torch by
    ``potentials.load``, ``potentials.ase.JmofCalculator`` and ``jmof.md``. Returns
    ``(config, params)``. The parameters are stored in float64 (see :func:`nequip_params`);
    ``dtype`` is the precision the model computes in by default (``potentials.load(...,
    dtype=...)`` changes it)."""
    config, state = read_checkpoint(model)
    nequip = nequip_config(config, state, dtype=dtype)
    params = nequip_params(config, state, nequip)
    checkpoint.save_model(out_dir, params, nequip)
    return nequip, params
