"""Exact TreeSHAP at a fraction of the cost: per-leaf tables computed once per model.

Path-dependent TreeSHAP (what LightGBM's `pred_contrib` computes) splits each leaf's value among
the features on its path. For one leaf, what a row contributes depends only on which of those
features the row "agrees with" (satisfies every split on that feature along the path): a subset
S of the leaf's d path features. So each leaf's contributions can be tabulated once for all 2^d
subsets (Fast TreeSHAP v2, Yang 2021), and explaining a row is a walk over the trees looking up
one table entry per leaf: O(trees x leaves x depth) per row instead of LightGBM's
O(trees x leaves x depth^2), with no approximation.

For leaf l with value v, path features F (|F| = d), cover fractions z_j (the share of training
rows that followed the path at the splits on j) and agreement o_j in {0, 1}:

    phi_i = v (o_i - z_i) sum_{U subset of S minus i} |U|! (d - |U| - 1)! / d!
            * prod_{j in F minus i minus U} z_j

Rows that take the same decisions at every split node of a tree get the same entries from
it: within a block of rows, each tree's entries are looked up once per group of such rows and
added to each row of the group in the order a row alone adds them (so the sums are the same to
the last bit; sub-scores rank them against reference quantiles, where a last bit can matter).
The kernels are compiled with numba (cached on disk after the first run); explaining is
parallel over blocks of rows. Models whose tables would not fit `MAX_BYTES` (very deep trees:
a leaf with d distinct path features needs 2^d x d numbers) are left to LightGBM's TreeSHAP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

MAX_BYTES = 512 * 1024**2
_NUMERIC, _CATEGORICAL = 0, 1
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}
_ZERO = 1e-35  # LightGBM's kZeroThreshold
BLOCK = 2048  # rows explained together: one tree's decisions for them, then its leaves
MAX_KEYED_NODES = 63  # a tree's decisions for a row, as the bits of one int64
_thread_cap = 0  # 0: as `contributions` is asked; 1: this process explains on one thread


@dataclass(frozen=True)
class LeafTables:
    """A LightGBM model flattened into arrays, with each leaf's contribution table.

    Split nodes are numbered per tree in pre-order (a parent before its children), from
    `tree_node_start[t]`; leaves from `tree_leaf_start[t]`. A node's `slot` is the position of its
    feature among the distinct features on the path to it (first appearance first), which is
    the same for every leaf below it, so a row's disagreement mask is built once per node."""

    n_features: int
    bias: float
    tree_node_start: np.ndarray
    node_feature: np.ndarray
    node_threshold: np.ndarray
    node_kind: np.ndarray
    node_default_left: np.ndarray
    node_nan_left: np.ndarray  # where a missing value goes
    node_zero_missing: np.ndarray  # zero counts as missing (goes the default way)
    node_cat_start: np.ndarray  # categorical splits: go-left flags by category code
    cat_left: np.ndarray
    node_parent: np.ndarray  # within the tree; -1 for the root
    node_is_left: np.ndarray  # the node is its parent's left child
    node_slot: np.ndarray
    tree_leaf_start: np.ndarray
    leaf_parent: np.ndarray  # within the tree; -1 for a tree that is a single leaf
    leaf_is_left: np.ndarray
    leaf_feat_start: np.ndarray  # the leaf's distinct path features (global ids), in slot order
    leaf_feat: np.ndarray
    table_start: np.ndarray
    table: np.ndarray
    max_nodes: int

    @property
    def nbytes(self) -> int:
        return int(self.table.nbytes)


def table_bytes(model_dump: dict) -> int:
    """How much memory the tables of a `Booster.dump_model()` would take."""
    total = 0

    def walk(node: dict, features: frozenset[int]) -> None:
        nonlocal total
        if "leaf_value" in node:
            total += (2 ** len(features)) * len(features) * 8
            return
        inner = features | {int(node["split_feature"])}
        walk(node["left_child"], inner)
        walk(node["right_child"], inner)

    for tree in model_dump["tree_info"]:
        walk(tree["tree_structure"], frozenset())
    return total


class _Builder:
    """Accumulates the flat arrays while walking each tree once."""

    def __init__(self) -> None:
        self.nodes: dict[str, list] = {
            k: []
            for k in (
                "feature",
                "threshold",
                "kind",
                "default_left",
                "nan_left",
                "zero_missing",
                "parent",
                "is_left",
                "slot",
            )
        }
        self.cat_start: list[int] = [0]
        self.cat_left: list[bool] = []
        self.leaf_parent: list[int] = []
        self.leaf_is_left: list[bool] = []
        self.leaf_feat_start, self.leaf_feat, self.table_start = [0], [], [0]
        self.tables: list[np.ndarray] = []
        self.bias = 0.0

    def tree(self, root: dict) -> int:
        """Add one tree; return its number of split nodes."""
        first = len(self.nodes["feature"])
        total = root.get("internal_count", root.get("leaf_count", 1)) or 1
        self._walk(root, first, -1, False, [], [], total)
        return len(self.nodes["feature"]) - first

    def _walk(
        self,
        node: dict,
        first: int,
        parent: int,
        is_left: bool,
        features: list[int],
        zero: list[float],
        total: float,
    ) -> None:
        if "leaf_value" in node:
            value = float(node["leaf_value"])
            self.bias += value * (node["leaf_count"] / total if parent >= 0 else 1.0)
            self.leaf_parent.append(parent)
            self.leaf_is_left.append(is_left)
            self.leaf_feat.extend(features)
            self.leaf_feat_start.append(len(self.leaf_feat))
            table = _leaf_table(value, np.asarray(zero)) if features else np.zeros(0)
            self.tables.append(table)
            self.table_start.append(self.table_start[-1] + table.size)
            return
        index = len(self.nodes["feature"]) - first
        feature = int(node["split_feature"])
        if feature not in features:
            features, zero = [*features, feature], [*zero, 1.0]
        slot = features.index(feature)
        n = self.nodes
        n["feature"].append(feature)
        missing = _MISSING[node["missing_type"]]
        n["default_left"].append(bool(node["default_left"]))
        n["zero_missing"].append(missing == _MISSING["Zero"])
        n["parent"].append(parent)
        n["is_left"].append(is_left)
        n["slot"].append(slot)
        if node["decision_type"] == "==":
            n["kind"].append(_CATEGORICAL)
            n["threshold"].append(0.0)
            n["nan_left"].append(False)
            codes = {int(c) for c in str(node["threshold"]).split("||")}
            self.cat_left.extend(code in codes for code in range(max(codes) + 1))
        else:
            threshold = float(node["threshold"])
            n["kind"].append(_NUMERIC)
            n["threshold"].append(threshold)
            # A missing value goes the default way, unless the split saw none in training:
            # then LightGBM compares it as 0.
            n["nan_left"].append(bool(node["default_left"]) if missing else threshold >= 0.0)
        self.cat_start.append(len(self.cat_left))
        for child, left in ((node["left_child"], True), (node["right_child"], False)):
            count = child.get("internal_count", child.get("leaf_count"))
            share = [*zero]
            share[slot] *= count / node["internal_count"]
            self._walk(child, first, index, left, features, share, total)


def build_tables(model_dump: dict) -> LeafTables:
    """Flatten `Booster.dump_model(num_iteration=...)` and tabulate every leaf."""
    build = _Builder()
    tree_node_start, tree_leaf_start = [0], [0]
    max_nodes = 1
    for tree in model_dump["tree_info"]:
        max_nodes = max(max_nodes, build.tree(tree["tree_structure"]))
        tree_node_start.append(len(build.nodes["feature"]))
        tree_leaf_start.append(len(build.leaf_parent))
    n = build.nodes

    def ints(values: list) -> np.ndarray:
        return np.asarray(values, dtype=np.int64)

    return LeafTables(
        n_features=model_dump["max_feature_idx"] + 1,
        bias=build.bias,
        tree_node_start=ints(tree_node_start),
        node_feature=ints(n["feature"]),
        node_threshold=np.asarray(n["threshold"], dtype=np.float64),
        node_kind=np.asarray(n["kind"], dtype=np.int8),
        node_default_left=np.asarray(n["default_left"], dtype=np.bool_),
        node_nan_left=np.asarray(n["nan_left"], dtype=np.bool_),
        node_zero_missing=np.asarray(n["zero_missing"], dtype=np.bool_),
        node_cat_start=ints(build.cat_start),
        cat_left=np.asarray(build.cat_left, dtype=np.bool_),
        node_parent=ints(n["parent"]),
        node_is_left=np.asarray(n["is_left"], dtype=np.bool_),
        node_slot=ints(n["slot"]),
        tree_leaf_start=ints(tree_leaf_start),
        leaf_parent=ints(build.leaf_parent),
        leaf_is_left=np.asarray(build.leaf_is_left, dtype=np.bool_),
        leaf_feat_start=ints(build.leaf_feat_start),
        leaf_feat=ints(build.leaf_feat),
        table_start=ints(build.table_start),
        table=np.concatenate([t.ravel() for t in build.tables]) if build.tables else np.zeros(0),
        max_nodes=max_nodes,
    )


def _leaf_table(value: float, zero: np.ndarray) -> np.ndarray:
    """(2^d, d): the contribution of each path feature, for each agreement subset S."""
    d = len(zero)
    weights = np.array(
        [math.factorial(k) * math.factorial(d - k - 1) / math.factorial(d) for k in range(d)]
    )
    out = np.empty((2**d, d))
    _fill_table(value, zero, weights, out)
    return out


def use_one_thread() -> None:
    """Explain on this process's own thread from now on, without OpenMP: for a process forked
    to work beside others (each on a core), where a thread pool inherited from the parent in
    the state the fork found it would hang the first parallel region."""
    global _thread_cap
    _thread_cap = 1


def one_thread() -> bool:
    """Whether this process works on one thread (`use_one_thread`)."""
    return _thread_cap == 1


def contributions(tables: LeafTables, values: np.ndarray, threads: int = 0) -> np.ndarray:
    """(n, n_features + 1) TreeSHAP contributions, the last column the expected value.

    `values` is the model's input as float64: numbers, categorical codes, NaN for missing.
    `threads` caps the threads used (0: numba's default, one per core)."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    out = np.zeros((len(values), tables.n_features + 1))
    if len(values):
        threads = _thread_cap or threads
        one_thread = threads == 1 or numba.config.NUMBA_NUM_THREADS == 1
        if threads > 0 and not one_thread:
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        explain = _explain_serial if one_thread else _explain_parallel
        explain(
            -(-len(values) // BLOCK),
            BLOCK,
            (
                values,
                tables.tree_node_start,
                tables.node_feature,
                tables.node_threshold,
                tables.node_kind,
                tables.node_default_left,
                tables.node_nan_left,
                tables.node_zero_missing,
                tables.node_cat_start,
                tables.cat_left,
                tables.node_parent,
                tables.node_is_left,
                tables.node_slot,
                tables.tree_leaf_start,
                tables.leaf_parent,
                tables.leaf_is_left,
                tables.leaf_feat_start,
                tables.leaf_feat,
                tables.table_start,
                tables.table,
                tables.max_nodes,
                out,
            ),
        )
    out[:, -1] = tables.bias
    return out


def _fill_table_py(value: float, zero: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
    d = len(zero)
    poly = np.zeros(d + 1)
    for subset in range(1 << d):
        for i in range(d):
            absent = 1.0
            poly[:] = 0.0
            poly[0] = 1.0
            m = 0
            for j in range(d):
                if j == i:
                    continue
                if (subset >> j) & 1:  # j agrees: may or may not be in U
                    m += 1
                    for q in range(m, 0, -1):
                        poly[q] += zero[j] * poly[q - 1]
                else:  # j disagrees: never in U, always weighted by its cover fraction
                    absent *= zero[j]
            total = 0.0
            for q in range(m + 1):  # q features of S minus i left out of U
                total += weights[m - q] * poly[q]
            out[subset, i] = value * (((subset >> i) & 1) - zero[i]) * absent * total


def _explain_block_py(
    b: int,
    block: int,
    values: np.ndarray,
    tree_node_start: np.ndarray,
    node_feature: np.ndarray,
    node_threshold: np.ndarray,
    node_kind: np.ndarray,
    node_default_left: np.ndarray,
    node_nan_left: np.ndarray,
    node_zero_missing: np.ndarray,
    node_cat_start: np.ndarray,
    cat_left: np.ndarray,
    node_parent: np.ndarray,
    node_is_left: np.ndarray,
    node_slot: np.ndarray,
    tree_leaf_start: np.ndarray,
    leaf_parent: np.ndarray,
    leaf_is_left: np.ndarray,
    leaf_feat_start: np.ndarray,
    leaf_feat: np.ndarray,
    table_start: np.ndarray,
    table: np.ndarray,
    max_nodes: int,
    out: np.ndarray,
) -> None:
    """Rows b * block .. (b + 1) * block of `values` explained into `out`.

    Within a tree, what a row gets depends only on its decisions at the tree's split nodes
    (every leaf's disagreement mask is built from them). So the block's rows are grouped by
    their decisions (a bit per node, for trees of up to `MAX_KEYED_NODES` split nodes; a larger
    tree makes a group of each row), each group's leaf entries are looked up once, and added
    to each of its rows in the order a row on its own would add them: the sums are the same to
    the last bit."""
    n = values.shape[0]
    start = b * block
    rows = min(n, start + block) - start
    left = np.zeros((max_nodes, block), dtype=np.bool_)
    # per split node: the path features (by slot) the row has disagreed with so far
    mask = np.zeros(max_nodes, dtype=np.int64)  # mask[0], the root's, stays 0
    key = np.zeros(rows, dtype=np.int64)
    longest = 0  # a tree's leaf entries: its leaves' path features, leaf after leaf
    for t in range(len(tree_node_start) - 1):
        entries = leaf_feat_start[tree_leaf_start[t + 1]] - leaf_feat_start[tree_leaf_start[t]]
        longest = max(longest, entries)
    entry = np.zeros(longest)  # one group's entries from one tree
    for t in range(len(tree_node_start) - 1):  # tree-major: one tree's tables stay in cache
        first = tree_node_start[t]
        nodes = tree_node_start[t + 1] - first
        # LightGBM's decisions (tree.h NumericalDecision / CategoricalDecision), node-major
        for k in range(nodes):
            node = first + k
            f = node_feature[node]
            if node_kind[node] == _CATEGORICAL:
                c0 = node_cat_start[node]
                width = node_cat_start[node + 1] - c0
                for i in range(rows):
                    x = values[start + i, f]
                    go = False
                    if x >= 0 and x < width:  # NaN, negative or unseen codes go right
                        go = cat_left[c0 + int(x)]
                    left[k, i] = go
            else:
                threshold = node_threshold[node]
                nan_left = node_nan_left[node]
                for i in range(rows):
                    x = values[start + i, f]
                    left[k, i] = (x <= threshold) | (np.isnan(x) & nan_left)
                if node_zero_missing[node]:
                    default_left = node_default_left[node]
                    for i in range(rows):
                        if abs(values[start + i, f]) <= _ZERO:
                            left[k, i] = default_left
        for i in range(rows):
            bits = np.int64(i)  # too many decisions for one key: each row its own group
            if nodes <= MAX_KEYED_NODES:
                bits = 0
                for k in range(nodes):
                    bits |= np.int64(left[k, i]) << k
            key[i] = bits
        order = np.argsort(key, kind="mergesort")
        e0 = leaf_feat_start[tree_leaf_start[t]]
        entries = leaf_feat_start[tree_leaf_start[t + 1]] - e0
        j = 0
        while j < rows:
            group = key[order[j]]
            _leaf_entries(
                t, order[j], first, left, mask, node_parent, node_is_left, node_slot,
                tree_node_start, tree_leaf_start, leaf_parent, leaf_is_left, leaf_feat_start,
                table_start, table, entry,
            )  # fmt: skip
            while j < rows and key[order[j]] == group:
                r = start + order[j]
                for q in range(entries):
                    out[r, leaf_feat[e0 + q]] += entry[q]
                j += 1


def _leaf_entries_py(
    t: int,
    i: int,
    first: int,
    left: np.ndarray,
    mask: np.ndarray,
    node_parent: np.ndarray,
    node_is_left: np.ndarray,
    node_slot: np.ndarray,
    tree_node_start: np.ndarray,
    tree_leaf_start: np.ndarray,
    leaf_parent: np.ndarray,
    leaf_is_left: np.ndarray,
    leaf_feat_start: np.ndarray,
    table_start: np.ndarray,
    table: np.ndarray,
    entry: np.ndarray,
) -> None:
    """Tree t's table entries for the block's row i (its decisions in `left[:, i]`), into
    `entry`: one per leaf path feature, leaf after leaf (the order of `leaf_feat`)."""
    # pre-order: the root is node 0 and every parent comes before its children
    for k in range(1, tree_node_start[t + 1] - first):
        parent = node_parent[first + k]
        off = np.int64(left[parent, i] != node_is_left[first + k])
        mask[k] = mask[parent] | (off << node_slot[first + parent])
    e0 = leaf_feat_start[tree_leaf_start[t]]
    for leaf in range(tree_leaf_start[t], tree_leaf_start[t + 1]):
        f0 = leaf_feat_start[leaf]
        d = leaf_feat_start[leaf + 1] - f0
        if d == 0:
            continue
        parent = leaf_parent[leaf]
        off = np.int64(left[parent, i] != leaf_is_left[leaf])
        disagree = mask[parent] | (off << node_slot[first + parent])
        base = table_start[leaf] + (((1 << d) - 1) & ~disagree) * d
        for k in range(d):
            entry[f0 - e0 + k] = table[base + k]


def _explain_parallel_py(blocks: int, block: int, arrays: tuple) -> None:
    for b in numba.prange(blocks):
        _explain_block(b, block, *arrays)


def _explain_serial_py(blocks: int, block: int, arrays: tuple) -> None:
    for b in range(blocks):
        _explain_block(b, block, *arrays)


# Two drivers of one kernel, each its own function: numba's disk cache keys a function by its
# code and signature, not by `parallel`, so one function jitted both ways would share entries
_fill_table = numba.njit(cache=True)(_fill_table_py)
_leaf_entries = numba.njit(cache=True)(_leaf_entries_py)
_explain_block = numba.njit(cache=True)(_explain_block_py)
_explain_parallel = numba.njit(cache=True, parallel=True)(_explain_parallel_py)
_explain_serial = numba.njit(cache=True)(_explain_serial_py)
