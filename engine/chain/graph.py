"""The chain's graph read two more ways: backwards (the scanner) and by dependency level.

**The reverse pass as message passing.** The DRT deck: the scanner uses the same seven
matrices "but the wires flow from right to left", the pattern of message passing on
the transpose graph in graph neural networks. ``reverse_graph`` flips every edge of
``Chain.to_graph()`` (same weights, same nodes); ``graph_reverse`` starts from an output
y at the assemble nodes and lets every node send ``weight * value`` along the flipped
edges, layer by layer, with no matrix anywhere. Between the activation and the sparse
layer each node applies sigma^-1 to its own value (all K nodes, as the scanner does);
the select layer then receives only along the routing support's edges. The result
equals ``scanner.scan(chain, y, "transpose")`` column by column (tested to rounding):
the transpose products *are* message passing on the reversed edge list.

**Parallelism.** ``levels`` gives every node its dependency level: the longest path
(in edges) from the inputs. Nodes of one level never feed each other, so they can be
evaluated at once; the number of levels minus one is the critical path length, and
``critical_path`` returns one such longest path. ``level_table`` adds the work per
level: multiply-adds of the dense matrices, of the nonzero weights only, and of the
messages actually sent when zero nodes send nothing (mean over the phases).

    g = make_chain().to_graph()
    lv = levels(g.n_nodes, g.src, g.dst, sources=range(16))   # the clock is the input
    critical_path(g.n_nodes, g.src, g.dst, sources=range(16))  # 7 nodes, one per layer
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterable

import numpy as np
import pandas as pd

from engine.chain.generator import COLUMNS, Chain, Graph, graph_forward
from engine.chain.scanner import inverse_activation
from engine.validate import check_int

UNREACHED = -1


# -- the reverse pass on the flipped edges -----------------------------------------------------
def reverse_graph(graph: Graph) -> Graph:
    """The same nodes with every edge flipped (dst -> src), weights unchanged.

    ``edge_layer`` becomes the layer an edge now delivers to (its old source layer).
    """
    layer_of = node_layers(graph)
    return replace(graph, src=graph.dst.copy(), dst=graph.src.copy(),
                   edge_layer=layer_of[graph.src].copy(), _derived={})


def node_layers(graph: Graph) -> np.ndarray:
    """(n_nodes,) the layer index (0..6, ``COLUMNS`` order) of every node."""
    out = np.zeros(graph.n_nodes, dtype=np.int64)
    for i, ((_, n), off) in enumerate(zip(graph.layers, graph.offsets)):
        out[off:off + n] = i
    return out


def graph_reverse(graph: Graph, y) -> dict[str, np.ndarray]:
    """Message passing from outputs ``y`` (F,) back to the clock on the flipped edges.

    Returns {column: (size,)} like ``graph_forward``: propagate = M^T y, activation =
    W^T h, sparse = sigma^-1 of the activation nodes (node by node), select = the sparse
    nodes on the routing support (only they have an edge), lookup = R r, clock = L^T e_p;
    every sum is an ``np.add.at`` over the edges that deliver to that layer.
    """
    y = np.asarray(y, dtype=float).ravel()
    F = graph.layers[-1][1]
    if y.size != F or not np.all(np.isfinite(y)):
        raise ValueError(f"y: expected {F} finite outputs (one per assemble node), "
                         f"got shape {np.asarray(y).shape}")
    rev = reverse_graph(graph)
    value = np.zeros(graph.n_nodes)
    value[graph.offsets[-1]:] = y
    act, sparse = COLUMNS.index("activation"), COLUMNS.index("sparse")
    for layer in range(len(graph.layers) - 2, -1, -1):
        lo, n = graph.offsets[layer], graph.layers[layer][1]
        if layer == sparse:  # sigma^-1, each activation node on its own value
            a = value[graph.offsets[act]:graph.offsets[act] + n]
            value[lo:lo + n] = inverse_activation(a, graph.activation)[0]
            continue
        on = rev.edge_layer == layer
        s, d, w = rev.src[on], rev.dst[on], rev.weight[on]
        np.add.at(value, d, w * value[s])
    return {name: value[o:o + n].copy() for (name, n), o in zip(graph.layers, graph.offsets)}


def reverse_scan_difference(chain: Chain, Y) -> dict[str, float]:
    """max |graph_reverse - scan(transpose)| per column over the outputs Y (n, F)."""
    from engine.chain.scanner import scan

    Y = np.atleast_2d(np.asarray(Y, dtype=float))
    ref = scan(chain, Y, "transpose").columns
    g = chain.to_graph()
    out = {c: 0.0 for c in COLUMNS}
    for i, y in enumerate(Y):
        got = graph_reverse(g, y)
        for c in COLUMNS:
            out[c] = max(out[c], float(np.max(np.abs(got[c] - ref[c][i]))))
    return out


# -- dependency levels and the critical path ----------------------------------------------------
def _check_edges(n_nodes: int, src, dst) -> tuple[int, np.ndarray, np.ndarray]:
    n = check_int("n_nodes", n_nodes, 0)
    s = np.asarray(src, dtype=np.int64).ravel()
    d = np.asarray(dst, dtype=np.int64).ravel()
    if s.shape != d.shape:
        raise ValueError(f"edges: expected src and dst of one length, got {s.size} and {d.size}")
    if s.size and (min(s.min(), d.min()) < 0 or max(s.max(), d.max()) >= n):
        raise ValueError(f"edges: expected node ids in [0, {n - 1}], got "
                         f"[{min(s.min(), d.min())}, {max(s.max(), d.max())}]")
    return n, s, d


def levels(n_nodes: int, src, dst, sources: Iterable[int] | None = None) -> np.ndarray:
    """(n_nodes,) dependency level of every node: the longest path from ``sources``.

    sources: the input nodes (default: every node with no incoming edge). Nodes that no
    path from the sources reaches get ``UNREACHED`` (-1): their value never changes.
    Raises ValueError on a cycle (no order to evaluate it in).
    """
    n, s, d = _check_edges(n_nodes, src, dst)
    indeg = np.bincount(d, minlength=n)
    start = np.flatnonzero(indeg == 0) if sources is None else np.unique(
        np.asarray(list(sources), dtype=np.int64))
    # Kahn's order over the whole graph, then longest distances from the sources
    order, deg = [], indeg.copy()
    out_edges = [[] for _ in range(n)]
    for a, b in zip(s.tolist(), d.tolist()):
        out_edges[a].append(b)
    frontier = list(np.flatnonzero(deg == 0))
    while frontier:
        u = frontier.pop()
        order.append(u)
        for v in out_edges[u]:
            deg[v] -= 1
            if deg[v] == 0:
                frontier.append(v)
    if len(order) != n:
        raise ValueError(f"graph: expected no cycle (a dependency order), got {n - len(order)} "
                         "nodes on or behind a cycle")
    lv = np.full(n, UNREACHED, dtype=np.int64)
    lv[start] = 0
    for u in order:
        if lv[u] == UNREACHED:
            continue
        for v in out_edges[u]:
            lv[v] = max(lv[v], lv[u] + 1)
    return lv


def critical_path(n_nodes: int, src, dst, sources: Iterable[int] | None = None) -> list[int]:
    """One longest dependency chain, as node ids from a source to the deepest node.

    Its length in edges (``len(path) - 1``) is the critical path length: no schedule,
    however many processors, finishes in fewer sequential steps.
    """
    n, s, d = _check_edges(n_nodes, src, dst)
    return _walk_back(levels(n, s, d, sources), s, d)


def _walk_back(lv: np.ndarray, s: np.ndarray, d: np.ndarray) -> list[int]:
    """A longest path ending at the deepest node, found backwards through the levels ``lv``."""
    if lv.size == 0 or lv.max() == UNREACHED:
        return []
    node = int(np.argmax(lv))
    path = [node]
    while lv[node] > 0:  # step back along an edge from the level just below
        prev = s[(d == node) & (lv[s] == lv[node] - 1)]
        node = int(prev.min())
        path.append(node)
    return path[::-1]


def independent(n_nodes: int, src, dst, nodes: Iterable[int]) -> bool:
    """True when no edge joins two of ``nodes`` (they can be evaluated at the same time)."""
    _, s, d = _check_edges(n_nodes, src, dst)
    inside = np.zeros(n_nodes, dtype=bool)
    inside[list(nodes)] = True
    return not bool(np.any(inside[s] & inside[d]))


# -- the chain's levels and their work -----------------------------------------------------------
def chain_levels(chain: Chain) -> np.ndarray:
    """Levels of the chain's graph with the clock as the input (see ``levels``); computed once
    per graph (the pages ask for them several times), read-only."""
    g = chain.to_graph()
    if "levels" not in g._derived:
        lv = levels(g.n_nodes, g.src, g.dst, sources=range(chain.spec.n_phases))
        lv.flags.writeable = False
        g._derived["levels"] = lv
    return g._derived["levels"]


def chain_critical_path(chain: Chain) -> list[int]:
    """``critical_path`` of the chain's graph from the clock, from ``chain_levels``."""
    g = chain.to_graph()
    return _walk_back(chain_levels(chain), g.src, g.dst)


def level_table(chain: Chain) -> pd.DataFrame:
    """Per dependency level: which layer, how many nodes run in parallel, and the work.

    dense_ops: multiply-adds of the dense matrix that feeds the level (L, S, the masks,
    W, M as full matrices); weight_ops: one per nonzero weight (an edge of the graph);
    sent_ops: messages actually sent when a zero node sends nothing, the mean over the
    phases (``graph_forward``'s rule). Level 0 is the clock, the input.
    """
    g = chain.to_graph()
    lv = chain_levels(chain)
    layer_of = node_layers(g)
    sizes = [n for _, n in g.layers]
    T = chain.spec.n_phases
    sent = np.zeros(g.n_edges)
    for t in range(T):
        vals = np.concatenate([graph_forward(g, t)[c] for c in COLUMNS])
        sent += vals[g.src] != 0
    sent /= T
    rows = []
    for level in range(int(lv.max()) + 1):
        nodes = np.flatnonzero(lv == level)
        into = lv[g.dst] == level
        layers = sorted({COLUMNS[i] for i in layer_of[nodes]})
        dense = 0 if level == 0 else int(sum(sizes[COLUMNS.index(c)] * sizes[COLUMNS.index(c) - 1]
                                             if c not in ("sparse", "activation")
                                             else sizes[COLUMNS.index(c)] for c in layers))
        rows.append({"level": level, "layers": ", ".join(layers), "parallel_nodes": int(nodes.size),
                     "independent": independent(g.n_nodes, g.src, g.dst, nodes),
                     "dense_ops": dense, "weight_ops": int(into.sum()),
                     "sent_ops": round(float(sent[into].sum()), 2)})
    frame = pd.DataFrame(rows)
    frame.attrs["unreached"] = int(np.sum(lv == UNREACHED))
    frame.attrs["critical_path"] = int(lv.max())
    return frame
