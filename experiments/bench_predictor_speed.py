"""CGCNN speed on CoRE MOF 2019-ASR: training (jmof vs PyTorch Geometric), vmap ensembles,
inference (issue 4).

    python experiments/bench_predictor_speed.py [--n 1000] [--epochs 3] [--ensemble-steps 30]
                                                [--n-infer 0]

Everything runs in one process on the same data (``CGCNNConfig(targets=("LCD",))`` defaults:
8 Å, 12 nearest neighbours, 40 Gaussians, 64 features, 3 convolutions, head (128,)), standardised
on the training structures.

1. Training: the first ``n`` valid structures, batched by ``predictors.cgcnn.graph_loader``
   (4,096-node budget, seed 0; epoch e uses ``loader(e)``). jmof: the step of ``jmof.train.fit``
   (``train_step_fn`` of ``cgcnn.loss_fn`` and Adam 1e-3, jitted with the state donated). Peer:
   a PyTorch Geometric ``MessagePassing`` model written here to be the same network (same
   layers, layer norms, parameter count and FLOPs; PyG's ``CGConv`` has no layer norms and a
   different parameter count), starting from the same weights, trained by Adam 1e-3 on the MSE
   of the standardised target, with ``torch.set_num_threads(threads)``. It gets the same batches
   in the same order with the padding stripped (real nodes and edges come first in a padded
   batch); edge lengths are computed in torch from positions, cells and shifts inside each step,
   as jmof does inside JAX. Before timing, the torch model loaded with the JAX params must give
   the same outputs, loss and gradient norm on a batch and have as many parameters. Both sides
   get their batches already converted (device arrays / tensors): host-side batching is not
   timed. Figures: structures/s of an epoch after a warm-up epoch (median of ``epochs``
   epochs), and compile time: the first call of each batch shape minus its later calls, and
   ``lower().compile()`` of every shape on a new function (nothing cached).
2. Ensembles of K = ``members`` (``predictors.ensemble``, one vmapped program) against K
   single-model trainings one after the other (one compiled step, as in one process), each over
   the first ``ensemble_steps`` batches of a training epoch; with and without compilation.
   Member k of the vmapped ensemble is checked against single model k.
3. Inference over the valid 2019-ASR structures (10,800; ``--n-infer`` takes a random sample)
   with a randomly initialised ``predictors.Predictor`` of one member: (a) from crystals
   already in memory (``predictors.predict``; also graph building and model evaluation timed
   apart, as ``predictors.api._predict_dataset`` does them), (b) from the CIF files
   (``jmof.read`` of every file, then ``predictors.predict``).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np
from _common import save


def _now():
    return time.perf_counter()


# --- the PyTorch Geometric peer --------------------------------------------------------------


def torch_model(config):
    """The CGCNN of ``predictors.cgcnn`` as a torch module (PyG message passing)."""
    import torch
    from torch import nn
    from torch.nn import functional as F
    from torch_geometric.nn import MessagePassing, global_mean_pool

    eps = 1e-6  # flax LayerNorm's epsilon (torch's default is 1e-5)

    class GatedConv(MessagePassing):
        """predictors.cgcnn._GatedConv: LN(v_j W_r + v_i W_s + e W_e + b) split into gate and
        core, messages sigmoid(gate) * softplus(core) summed on the receiver, then
        softplus(v + LN(sum)). Edges run sender (source, row 0) -> receiver (target, row 1)."""

        def __init__(self, features: int, n_gaussians: int):
            super().__init__(aggr="add")
            width = 2 * features
            self.receiver = nn.Linear(features, width, bias=False)
            self.sender = nn.Linear(features, width, bias=False)
            self.edge = nn.Linear(n_gaussians, width)
            self.edge_norm = nn.LayerNorm(width, eps=eps)
            self.node_norm = nn.LayerNorm(features, eps=eps)

        def forward(self, x, edge_index, edge_attr):
            summed = self.propagate(
                edge_index, own=self.receiver(x), other=self.sender(x), e=self.edge(edge_attr)
            )
            return F.softplus(x + self.node_norm(summed))

        def message(self, own_i, other_j, e):
            gate, core = self.edge_norm(own_i + other_j + e).chunk(2, dim=-1)
            return torch.sigmoid(gate) * F.softplus(core)

    class CGCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(config.n_species, config.features)
            self.convs = nn.ModuleList(
                GatedConv(config.features, config.n_gaussians) for _ in range(config.n_conv)
            )
            widths = (config.features, *config.hidden)
            self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
            self.out = nn.Linear(widths[-1], len(config.targets))
            self.register_buffer("centers", torch.linspace(0.0, config.cutoff, config.n_gaussians))
            self.width = config.gaussian_width or config.cutoff / (config.n_gaussians - 1)

        def forward(self, b):
            cell = b["cell"][b["batch"][b["senders"]]]  # [E, 3, 3]
            vectors = (
                b["positions"][b["receivers"]]
                - b["positions"][b["senders"]]
                + torch.einsum("ei,eij->ej", b["shifts"], cell)
            )
            lengths = torch.linalg.vector_norm(vectors, dim=-1)
            edges = torch.exp(-(((lengths[:, None] - self.centers) / self.width) ** 2))
            x = self.embed(b["species"])
            for conv in self.convs:
                x = conv(x, b["edge_index"], edges)
            x = global_mean_pool(x, b["batch"], size=b["n_graph"])
            for layer in self.hidden:
                x = F.softplus(layer(F.softplus(x)))
            return self.out(x)

    return CGCNN()


def torch_batch(batch, config):
    """A padded jmof Batch as torch tensors with the padding stripped, and its standardised
    targets (NaN where missing)."""
    import torch

    g = batch.graph
    n = int(np.sum(g.node_mask))
    e = int(np.sum(g.edge_mask))
    k = int(np.sum(g.graph_mask))
    senders = torch.as_tensor(np.asarray(g.senders[:e], np.int64))
    receivers = torch.as_tensor(np.asarray(g.receivers[:e], np.int64))
    targets = np.where(batch.target_mask[:k], batch.targets[:k], np.nan)
    targets = (targets - np.array(config.mean)) / np.array(config.std)
    return {
        "species": torch.as_tensor(np.asarray(g.species[:n], np.int64)),
        "positions": torch.as_tensor(np.asarray(g.positions[:n], np.float32)),
        "cell": torch.as_tensor(np.asarray(g.cell[:k], np.float32)),
        "shifts": torch.as_tensor(np.asarray(g.shifts[:e], np.float32)),
        "senders": senders,
        "receivers": receivers,
        "edge_index": torch.stack([senders, receivers]),
        "batch": torch.as_tensor(np.asarray(g.node_graph[:n], np.int64)),
        "n_graph": k,
        "targets": torch.as_tensor(targets, dtype=torch.float32),
    }


def copy_jax_params(model, params) -> None:
    """Load flax params of ``config.build()`` into :func:`torch_model`'s module."""
    import torch

    p = params["params"]

    def put(tensor, value, transpose=False):
        value = np.asarray(value, np.float32)
        with torch.no_grad():
            tensor.copy_(torch.from_numpy(np.array(value.T if transpose else value)))

    put(model.embed.weight, p["embed"]["embedding"])
    for k, conv in enumerate(model.convs):
        q = p[f"conv_{k}"]
        put(conv.receiver.weight, q["receiver"]["kernel"], True)
        put(conv.sender.weight, q["sender"]["kernel"], True)
        put(conv.edge.weight, q["edge"]["kernel"], True)
        put(conv.edge.bias, q["edge"]["bias"])
        for name in ("edge_norm", "node_norm"):
            put(getattr(conv, name).weight, q[name]["scale"])
            put(getattr(conv, name).bias, q[name]["bias"])
    for k, layer in enumerate(model.hidden):
        put(layer.weight, p[f"hidden_{k}"]["kernel"], True)
        put(layer.bias, p[f"hidden_{k}"]["bias"])
    put(model.out.weight, p["out"]["kernel"], True)
    put(model.out.bias, p["out"]["bias"])


def torch_step_fn(model, optimizer):
    import torch

    def step(b):
        optimizer.zero_grad(set_to_none=True)
        out = model(b)
        present = torch.isfinite(b["targets"])
        loss = torch.mean((out[present] - b["targets"][present]) ** 2)
        loss.backward()
        optimizer.step()
        return loss

    return step


# --- benchmark parts -------------------------------------------------------------------------


def n_params(tree) -> int:
    import jax

    return int(sum(np.size(x) for x in jax.tree.leaves(tree)))


def jax_epoch(step, state, batches):
    """Run ``step`` over ``batches``; (state, seconds, last metrics), blocking on the result."""
    import jax

    start, metrics = _now(), None
    for b in batches:
        state, metrics = step(state, b)
    jax.block_until_ready((state, metrics))
    return state, _now() - start, metrics


def first_call_overhead(calls) -> dict:
    """Per shape: its first call minus the median of its later calls (or of all later calls)."""
    out, later_all = {}, [seconds for _, seconds in calls[1:]]
    for shape in dict.fromkeys(shape for shape, _ in calls):
        times = [seconds for s, seconds in calls if s == shape]
        rest = times[1:] or later_all or [0.0]
        out["x".join(map(str, shape))] = times[0] - statistics.median(rest)
    return out


def compile_times(step_fn, state, batches) -> dict:
    """``lower().compile()`` seconds of every distinct batch shape, on a fresh jit."""
    import jax

    fresh = jax.jit(step_fn, donate_argnums=0)
    shapes, out = set(), {}
    for b in batches:
        shape = b.graph.shape
        if shape in shapes:
            continue
        shapes.add(shape)
        start = _now()
        fresh.lower(state, b).compile()
        out["x".join(map(str, shape))] = _now() - start
    return out


def parity(config, params, batch, tb) -> dict:
    """Torch model with the JAX params vs the JAX model on one batch: outputs, loss, gradient."""
    import jax
    import jax.numpy as jnp
    import torch

    from predictors.cgcnn import loss_fn

    model = torch_model(config)
    copy_jax_params(model, params)
    jax_out = np.asarray(config.build().apply(params, batch.graph))[: tb["n_graph"]]
    torch_out = model(tb)
    present = torch.isfinite(tb["targets"])
    loss = torch.mean((torch_out[present] - tb["targets"][present]) ** 2)
    loss.backward()
    torch_grad = float(
        torch.sqrt(sum(torch.sum(p.grad**2) for p in model.parameters() if p.grad is not None))
    )
    (jax_loss, _), grads = jax.value_and_grad(loss_fn(config), has_aux=True)(params, batch, None)
    jax_grad = float(jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads))))
    torch_out = torch_out.detach().numpy()
    return {
        "graphs": int(tb["n_graph"]),
        "max_abs_output_diff": float(np.max(np.abs(torch_out - jax_out))),
        "max_abs_output": float(np.max(np.abs(jax_out))),
        "loss_jax": float(jax_loss),
        "loss_torch": loss.item(),
        "grad_norm_jax": jax_grad,
        "grad_norm_torch": torch_grad,
        "params_jax": n_params(params),
        "params_torch": int(sum(p.numel() for p in model.parameters())),
    }


def bench_training(config, loader, epochs, threads) -> tuple[dict, list]:
    import jax
    import optax
    import torch

    from jmof import train
    from predictors.cgcnn import loss_fn

    torch.set_num_threads(threads)
    start = _now()
    host = [list(loader(e)) for e in range(epochs + 1)]  # epoch 0 warms up / compiles
    jax_batches = [jax.device_put(bs) for bs in host]
    torch_batches = [[torch_batch(b, config) for b in bs] for bs in host]
    prep_s = _now() - start
    n_structures = len(loader.dataset)
    n_batches = [len(bs) for bs in host]
    shapes = sorted({b.graph.shape for bs in host for b in bs})
    nodes = sum(int(np.sum(b.graph.node_mask)) for b in host[0])
    edges = sum(int(np.sum(b.graph.edge_mask)) for b in host[0])
    print(
        f"training set: {n_structures} structures, {nodes} atoms, {edges} edges; "
        f"{n_batches[0]} batches/epoch, shapes (N, E, G) {shapes}; prepared in {prep_s:.1f} s"
    )

    key = jax.random.key(0)
    params = config.build().init(key, jax_batches[0][0].graph)
    check = parity(config, params, jax_batches[0][0], torch_batches[0][0])
    print(
        f"parity (torch with the JAX params, {check['graphs']} graphs): max |Δout| "
        f"{check['max_abs_output_diff']:.2e} (|out| ≤ {check['max_abs_output']:.2f}); loss "
        f"{check['loss_jax']:.6f} / {check['loss_torch']:.6f}; grad norm "
        f"{check['grad_norm_jax']:.6f} / {check['grad_norm_torch']:.6f}; params "
        f"{check['params_jax']} / {check['params_torch']}"
    )
    assert check["params_jax"] == check["params_torch"], check
    assert check["max_abs_output_diff"] < 1e-3, check

    # jmof: the step exactly as fit builds it.
    optimizer = optax.adam(1e-3)
    step_fn = train.train_step_fn(
        loss_fn(config), optimizer, key_impl=str(jax.random.key_impl(key))
    )
    step = jax.jit(step_fn, donate_argnums=0)
    state = train.init_state(params, optimizer, jax.random.key(0))
    first_calls = []  # epoch 0 step by step: (shape, seconds); a shape's first call compiles
    for b in jax_batches[0]:
        t = _now()
        state, m = step(state, b)
        jax.block_until_ready((state, m))
        first_calls.append((b.graph.shape, _now() - t))
    jax_first_epoch = sum(seconds for _, seconds in first_calls)
    jax_epochs = []
    for bs in jax_batches[1:]:
        state, seconds, m = jax_epoch(step, state, bs)
        jax_epochs.append(seconds)
    # Compile time, two ways: first call of each shape minus that shape's later calls, and
    # lower().compile() of a new function (a new identity: nothing cached from ``step``).
    overhead = first_call_overhead(first_calls)
    aot = compile_times(lambda s, b: step_fn(s, b), state, [b for bs in jax_batches for b in bs])
    jax_epoch_s = statistics.median(jax_epochs)

    # torch: same init values, same batches.
    torch.manual_seed(0)
    model = torch_model(config)
    copy_jax_params(model, params)
    torch_step = torch_step_fn(model, torch.optim.Adam(model.parameters(), lr=1e-3))
    torch_epochs = []
    for bs in torch_batches:
        t = _now()
        for b in bs:
            loss = torch_step(b)
        torch_epochs.append(_now() - t)
    torch_first_epoch, torch_epoch_s = torch_epochs[0], statistics.median(torch_epochs[1:])

    result = {
        "n_structures": n_structures,
        "n_atoms": nodes,
        "n_edges": edges,
        "batches_per_epoch": n_batches,
        "batch_shapes": [list(s) for s in shapes],
        "prepare_s": prep_s,
        "parity": check,
        "jmof": {
            "structures_per_s": n_structures / jax_epoch_s,
            "epoch_s": jax_epoch_s,
            "epoch_runs_s": jax_epochs,
            "first_epoch_s": jax_first_epoch,
            "first_epoch_overhead_s": jax_first_epoch - jax_epoch_s,
            "first_call_overhead_s": sum(overhead.values()),
            "first_call_overhead_per_shape_s": overhead,
            "compile_s": sum(aot.values()),
            "compile_per_shape_s": aot,
            "final_loss": float(m["loss"]),
        },
        "torch": {
            "structures_per_s": n_structures / torch_epoch_s,
            "epoch_s": torch_epoch_s,
            "epoch_runs_s": torch_epochs[1:],
            "first_epoch_s": torch_first_epoch,
            "first_epoch_overhead_s": torch_first_epoch - torch_epoch_s,
            "threads": threads,
            "torch": torch.__version__,
            "final_loss": loss.item(),
        },
    }
    result["jmof_over_torch_speed"] = torch_epoch_s / jax_epoch_s
    print(
        f"training: jmof {result['jmof']['structures_per_s']:.1f} structures/s (epochs "
        f"{_fmt(jax_epochs)} s; compile {result['jmof']['compile_s']:.1f} s), torch "
        f"{result['torch']['structures_per_s']:.1f} structures/s (epochs "
        f"{_fmt(torch_epochs[1:])} s); jmof/torch speed {result['jmof_over_torch_speed']:.2f}×"
    )
    return result, jax_batches[1]


def bench_ensemble(config, batches, n_members, repeats) -> dict:
    import jax
    import optax

    from jmof import train
    from predictors.cgcnn import loss_fn
    from predictors.ensemble import (
        ensemble_loss_fn,
        ensemble_optimizer,
        init_ensemble,
        member,
    )

    def key():  # a new one each time: a donated TrainState takes its key's buffer with it
        return jax.random.key(1)

    key_impl = str(jax.random.key_impl(key()))
    keys = jax.random.split(key(), n_members)
    graph = batches[0].graph

    # K members in one vmapped program: a first run with compilation, then ``repeats`` compiled.
    stacked = init_ensemble(config, keys, graph)
    optimizer = ensemble_optimizer(optax.adam(1e-3))
    step = jax.jit(
        train.train_step_fn(ensemble_loss_fn(loss_fn(config)), optimizer, key_impl=key_impl),
        donate_argnums=0,
    )
    vmap_runs = []
    for _ in range(1 + repeats):
        state = train.init_state(stacked, optimizer, key())
        state, seconds, _ = jax_epoch(step, state, batches)
        vmap_runs.append(seconds)
    vmap_params = state.params

    # K single models one after the other with one compiled step (as in one process); member 0
    # again at the end, compiled, for the total without compilation.
    optimizer = optax.adam(1e-3)
    step = jax.jit(
        train.train_step_fn(loss_fn(config), optimizer, key_impl=key_impl), donate_argnums=0
    )
    seq_runs, seq_params = [], []
    for k in [*range(n_members), 0]:
        params = config.build().init(keys[k], graph)
        state = train.init_state(params, optimizer, key())
        state, seconds, _ = jax_epoch(step, state, batches)
        seq_runs.append(seconds)
        seq_params.append(state.params)
    diffs = [
        max(
            float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
            for a, b in zip(jax.tree.leaves(member(vmap_params, k)), jax.tree.leaves(seq_params[k]))
        )
        for k in range(n_members)
    ]
    vmap_excl = statistics.median(vmap_runs[1:])
    seq_incl = sum(seq_runs[:n_members])
    seq_excl = sum(seq_runs[1:])
    result = {
        "n_members": n_members,
        "batches": len(batches),
        "vmap_with_compile_s": vmap_runs[0],
        "vmap_s": vmap_excl,
        "vmap_runs_s": vmap_runs,
        "sequential_with_compile_s": seq_incl,
        "sequential_s": seq_excl,
        "sequential_member_runs_s": seq_runs,
        "sequential_over_vmap": seq_excl / vmap_excl,
        "sequential_over_vmap_with_compile": seq_incl / vmap_runs[0],
        "member_max_abs_param_diff": diffs,
    }
    print(
        f"ensemble K={n_members}, {len(batches)} steps: vmap {vmap_excl:.1f} s "
        f"({vmap_runs[0]:.1f} s with compile), sequential {seq_excl:.1f} s "
        f"({seq_incl:.1f} s with compile); "
        f"sequential/vmap {result['sequential_over_vmap']:.2f}×; member param diff ≤ "
        f"{max(diffs):.1e}"
    )
    return result


def bench_inference(config, dataset, cif_dir) -> dict:
    import jax

    import jmof
    import predictors
    from predictors.api import Predictor
    from predictors.cgcnn import graph_loader
    from predictors.ensemble import EnsembleConfig, init_ensemble, predict_ensemble

    n = len(dataset)
    crystals = list(dataset.crystals)
    probe = graph_loader(dataset.take(range(min(8, n))), config, targets=())
    params = init_ensemble(config, jax.random.split(jax.random.key(2), 1), next(probe(0)).graph)
    model = Predictor(EnsembleConfig(config, 1), params)

    # Parts of (a): the loader of predictors.api._predict_dataset, then the model on its batches.
    loader = graph_loader(dataset, config, targets=(), batch_nodes=4096, shuffle=False)
    t = _now()
    _ = loader.n_node  # neighbour lists (8 Å) and k-nearest truncation of every structure
    neighbors_s = _now() - t
    t = _now()
    batches = list(loader(0))
    batch_s = _now() - t
    apply_fn = jax.jit(lambda p, g: predict_ensemble(config, p, g))
    calls = []  # (shape, seconds) per batch; a shape's first call compiles
    for b in batches:
        t = _now()
        np.asarray(apply_fn(params, b.graph)[0])
        calls.append((b.graph.shape, _now() - t))
    eval_with_compile = sum(seconds for _, seconds in calls)
    compile_overhead = first_call_overhead(calls)
    eval_s = eval_with_compile - sum(compile_overhead.values())

    t = _now()
    mean_a, _ = predictors.predict(model, crystals)
    predict_s = _now() - t

    t = _now()
    read = [jmof.read(cif_dir / f"{name}.cif") for name in dataset.names]
    read_s = _now() - t
    t = _now()
    mean_b, _ = predictors.predict(model, read)
    predict_b_s = _now() - t
    assert np.isfinite(mean_a).all() and np.allclose(mean_a, mean_b, atol=1e-3)

    graph_s = neighbors_s + batch_s
    result = {
        "n_structures": n,
        "batches": len(batches),
        "batch_shapes": [list(s) for s in sorted({b.graph.shape for b in batches})],
        "neighbors_s": neighbors_s,
        "batch_s": batch_s,
        "graphs_s": graph_s,
        "eval_with_compile_s": eval_with_compile,
        "eval_s": eval_s,
        "eval_compile_per_shape_s": compile_overhead,
        "predict_s": predict_s,
        "read_s": read_s,
        "predict_after_read_s": predict_b_s,
        "structures_per_s": {
            "graphs": n / graph_s,
            "eval": n / eval_s,
            "predict_from_crystals": n / predict_s,
            "read": n / read_s,
            "read_and_predict": n / (read_s + predict_b_s),
        },
    }
    r = result["structures_per_s"]
    print(
        f"inference over {n}: graphs {graph_s:.1f} s ({neighbors_s:.1f} neighbour lists + "
        f"{batch_s:.1f} padding), model {eval_s:.1f} s ({eval_with_compile:.1f} s with compile); "
        f"predict() {predict_s:.1f} s = {r['predict_from_crystals']:.0f}/s; read {read_s:.1f} s "
        f"+ predict {predict_b_s:.1f} s = {r['read_and_predict']:.0f}/s"
    )
    return result


def _fmt(values) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000, help="training structures")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after a warm-up")
    parser.add_argument("--members", type=int, default=5, help="ensemble size")
    parser.add_argument(
        "--ensemble-steps", type=int, default=30, help="steps per ensemble run (0: an epoch)"
    )
    parser.add_argument("--ensemble-repeats", type=int, default=2, help="compiled vmap runs")
    parser.add_argument("--n-infer", type=int, default=0, help="inference sample (0: all)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--skip", nargs="*", default=[], choices=["train", "ensemble", "infer"])
    args = parser.parse_args()

    from jmof.data import coremof
    from predictors.cgcnn import CGCNNConfig, graph_loader, standardized_config

    dataset = coremof.load("2019-ASR", progress=False)
    train_set = dataset.take(range(min(args.n, len(dataset))))
    config = CGCNNConfig(targets=("LCD",))
    config = standardized_config(config, train_set.target_array(["LCD"]))
    loader = graph_loader(train_set, config, batch_nodes=4096, seed=0)
    results = {"config": dataclasses.asdict(config), "args": vars(args)}

    batches = None
    if "train" not in args.skip or "ensemble" not in args.skip:
        results["training"], batches = bench_training(config, loader, args.epochs, args.threads)
    if "ensemble" not in args.skip:
        steps = args.ensemble_steps or len(batches)
        results["ensemble"] = bench_ensemble(
            config, batches[:steps], args.members, args.ensemble_repeats
        )
    if "infer" not in args.skip:
        infer_set = dataset
        if 0 < args.n_infer < len(dataset):
            pick = np.sort(np.random.default_rng(0).choice(len(dataset), args.n_infer, False))
            infer_set = dataset.take(pick)
        results["inference"] = bench_inference(config, infer_set, coremof.extract("2019-ASR"))

    print()
    _table(results)
    save("predictor_speed", results)


def _table(results: dict) -> None:
    rows = []
    if "training" in results:
        tr = results["training"]
        j, t = tr["jmof"], tr["torch"]
        rows += [
            (
                "train structures/s (jmof | torch)",
                f"{j['structures_per_s']:.1f}",
                f"{t['structures_per_s']:.1f}",
            ),
            ("epoch s, median", f"{j['epoch_s']:.2f}", f"{t['epoch_s']:.2f}"),
            (
                "compile s: AOT | first calls (torch: 1st-epoch extra)",
                f"{j['compile_s']:.1f} | {j['first_call_overhead_s']:.1f}",
                f"{t['first_epoch_overhead_s']:.1f}",
            ),
            ("jmof / torch speed", f"{tr['jmof_over_torch_speed']:.2f}×", ""),
        ]
    if "ensemble" in results:
        en = results["ensemble"]
        rows += [
            (
                f"ensemble K={en['n_members']}, {en['batches']} steps, s (vmap | sequential)",
                f"{en['vmap_s']:.1f}",
                f"{en['sequential_s']:.1f}",
            ),
            (
                "  with compile",
                f"{en['vmap_with_compile_s']:.1f}",
                f"{en['sequential_with_compile_s']:.1f}",
            ),
            (
                "  sequential / vmap",
                f"{en['sequential_over_vmap']:.2f}×",
                f"{en['sequential_over_vmap_with_compile']:.2f}× w/ compile",
            ),
        ]
    if "inference" in results:
        r = results["inference"]["structures_per_s"]
        rows += [
            (f"inference structures/s ({results['inference']['n_structures']})", "", ""),
            (
                "  predict from crystals | read + predict",
                f"{r['predict_from_crystals']:.0f}",
                f"{r['read_and_predict']:.0f}",
            ),
            ("  graphs | model (compiled)", f"{r['graphs']:.0f}", f"{r['eval']:.0f}"),
        ]
    width = max(len(r[0]) for r in rows)
    for name, a, b in rows:
        print(f"{name:<{width}}  {a:>14}  {b:>18}")


if __name__ == "__main__":
    main()
