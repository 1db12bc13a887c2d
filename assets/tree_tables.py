"""Gradient-boosted trees evaluated as tables of their bins, a block of rows at a time.

scikit-learn walks each tree row by row and node by node: for `flight_delay`'s 250 trees of 15
leaves, 5.5 µs a flight on one core, most of a year's predictions at volume. Here a tree is one
table per feature it splits on, indexed by the feature's bin (one byte): the leaves a row with
that bin can still reach, as bits, the leaves numbered left to right. A row's tables ANDed
together leave the leaves its walk does not rule out, and the lowest bit left is the leaf the
walk reaches (the QuickScorer algorithm, Lucchese et al., SIGIR 2015): for any leaf left of it,
the two leaves' lowest common ancestor sends the row right, which rules out its whole left
subtree, and no node rules out the leaf the walk reaches, since every node above it sends the row
its way. Each table is one numpy gather over a block of rows: 2.5 µs a flight.

A node sends a row left exactly when scikit-learn's does: a missing bin where the node sends
missing values, a category in the node's bitset, a bin at most the split's. The leaf values are
added tree by tree in scikit-learn's order, so the scores are its own to the last bit.
"""

import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

# Bins are bytes: a table has an entry for every value a binned feature can take.
BINS = 256
# Rows per block: its masks and gathers stay in the core's cache.
BLOCK_ROWS = 32_768
# Trees with more leaves than a mask holds are walked by scikit-learn.
MAX_LEAVES = 64
_MASK_TYPES = ((16, np.uint16), (32, np.uint32), (64, np.uint64))
# The position of the lowest set bit of every 16-bit mask: most trees' leaf in one gather.
_LOWEST_BIT = np.log2(np.maximum(1, (lambda v: v & -v)(np.arange(1 << 16)))).astype(np.intp)


@dataclass(frozen=True)
class TreeTables:
    """One tree: for each feature it splits on, the leaves each bin can still reach."""

    tables: tuple[tuple[int, np.ndarray], ...]  # (feature, mask per bin)
    values: np.ndarray  # the leaves' values, left to right


@dataclass(frozen=True)
class ForestTables:
    """Every tree of a fitted model, by iteration and output, with one mask type."""

    trees: tuple[tuple[TreeTables, ...], ...]
    mask_type: type[np.unsignedinteger]
    features: tuple[int, ...]  # the features any tree splits on


# Each model's tables, with the bin mapper and trees they were built from: a model fitted
# again (a search's warm start adds trees to the same model) is built again.
_compiled: "weakref.WeakKeyDictionary[Any, tuple[tuple, ForestTables | None]]" = (
    weakref.WeakKeyDictionary()
)


def forest_tables(boost: Any) -> ForestTables | None:
    """The tables of a fitted `HistGradientBoosting*` (built once per fit), or None when a
    tree has more leaves than `MAX_LEAVES`."""
    fitted = (boost._bin_mapper, *(p for iteration in boost._predictors for p in iteration))
    built, forest = _compiled.get(boost, ((), None))
    if len(built) != len(fitted) or any(a is not b for a, b in zip(built, fitted, strict=True)):
        forest = _build(boost)
        _compiled[boost] = (fitted, forest)
    return forest


def _build(boost: Any) -> ForestTables | None:
    missing_bin = int(boost._bin_mapper.missing_values_bin_idx_)
    leaves = max(int(p.nodes["is_leaf"].sum()) for ps in boost._predictors for p in ps)
    if leaves > MAX_LEAVES:
        return None
    mask_type = next(kind for width, kind in _MASK_TYPES if leaves <= width)
    trees = tuple(
        tuple(_tree_tables(p, missing_bin, mask_type) for p in iteration)
        for iteration in boost._predictors
    )
    features = sorted({f for iteration in trees for tree in iteration for f, _ in tree.tables})
    return ForestTables(trees, mask_type, tuple(features))


def _tree_tables(predictor: Any, missing_bin: int, mask_type: type) -> TreeTables:
    nodes, bitsets = predictor.nodes, predictor.binned_left_cat_bitsets
    order: list[int] = []  # leaves, left to right
    below: dict[int, int] = {}  # node -> bits of the leaves under it

    def visit(node: int) -> int:
        if nodes[node]["is_leaf"]:
            order.append(node)
            below[node] = 1 << (len(order) - 1)
        else:
            below[node] = visit(int(nodes[node]["left"])) | visit(int(nodes[node]["right"]))
        return below[node]

    everything = visit(0)
    bins = np.arange(BINS)
    tables: dict[int, np.ndarray] = {}
    for node in nodes:
        if node["is_leaf"]:
            continue
        if node["is_categorical"]:
            words = bitsets[node["bitset_idx"]]
            goes_left = ((words[bins // 32] >> (bins % 32)) & 1).astype(bool)
        else:
            goes_left = bins <= node["bin_threshold"]
        goes_left[missing_bin] = bool(node["missing_go_to_left"])
        elsewhere = everything & ~below[int(node["left"])]
        table = np.where(goes_left, mask_type(everything), mask_type(elsewhere))
        feature = int(node["feature_idx"])
        tables[feature] = tables[feature] & table if feature in tables else table
    values = np.array([nodes[leaf]["value"] for leaf in order], dtype=np.float64)
    return TreeTables(tuple(tables.items()), values)


def add_leaf_values(
    forest: ForestTables, binned: np.ndarray, raw: np.ndarray, threads: int
) -> None:
    """Add every tree's leaf value for each row of `binned` to `raw` (rows by outputs), as
    scikit-learn's `_predict_iterations` does; the rows are cut among `threads` threads."""
    parts = np.array_split(np.arange(len(binned)), max(1, threads))
    spans = [(int(p[0]), int(p[-1]) + 1) for p in parts if len(p)]
    if len(spans) <= 1:
        for start, end in spans:
            _add_rows(forest, binned, raw, start, end)
        return
    with ThreadPoolExecutor(len(spans)) as pool:
        list(pool.map(lambda span: _add_rows(forest, binned, raw, *span), spans))


def _add_rows(forest: ForestTables, binned: np.ndarray, raw: np.ndarray, start: int, end: int):
    mask = np.empty(BLOCK_ROWS, forest.mask_type)
    table_row = np.empty(BLOCK_ROWS, forest.mask_type)
    leaf = np.empty(BLOCK_ROWS, np.intp)
    value = np.empty(BLOCK_ROWS, np.float64)
    for first in range(start, end, BLOCK_ROWS):
        last = min(end, first + BLOCK_ROWS)
        rows = last - first
        bins = {f: binned[first:last, f].astype(np.intp) for f in forest.features}
        masks, tables_rows, leaves, values = (
            mask[:rows],
            table_row[:rows],
            leaf[:rows],
            value[:rows],
        )
        for iteration in forest.trees:
            for output, tree in enumerate(iteration):
                scores = raw[first:last, output]
                if not tree.tables:  # a single leaf
                    scores += tree.values[0]
                    continue
                (feature, table), *others = tree.tables
                np.take(table, bins[feature], out=masks)
                for feature, table in others:
                    np.take(table, bins[feature], out=tables_rows)
                    np.bitwise_and(masks, tables_rows, out=masks)
                _lowest_bit(masks, leaves)
                np.take(tree.values, leaves, out=values)
                scores += values


def _lowest_bit(masks: np.ndarray, out: np.ndarray) -> None:
    """The position of each mask's lowest set bit (every mask has one: the leaf reached)."""
    if masks.dtype == np.uint16:
        np.take(_LOWEST_BIT, masks, out=out)
        return
    lowest = masks & (~masks + masks.dtype.type(1))  # two's complement: only the lowest bit
    out[:] = np.frexp(lowest.astype(np.float64))[1] - 1
