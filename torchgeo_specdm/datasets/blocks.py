"""Class-stratified assignment of a scene's grid blocks to train, val and test."""

import itertools
from collections.abc import Sequence

import numpy as np
from torch import Tensor

#: A block of a scene: top, left, height and width in pixels.
Block = tuple[int, int, int, int]

#: Random assignments scored before the swap search refines the best one.
CANDIDATES = 20000


def grid_blocks(height: int, width: int, grid: Sequence[int]) -> list[Block]:
    """Cut a scene into a grid of nearly equal blocks, row by row.

    Args:
        height: rows of the scene.
        width: columns of the scene.
        grid: blocks per column and per row (``(rows, columns)``).

    Returns:
        the blocks, left to right, then top to bottom; sides differ by at most
        one pixel.
    """
    rows = np.rint(np.linspace(0, height, grid[0] + 1)).astype(int)
    cols = np.rint(np.linspace(0, width, grid[1] + 1)).astype(int)
    return [
        (int(top), int(left), int(bottom - top), int(right - left))
        for top, bottom in itertools.pairwise(rows)
        for left, right in itertools.pairwise(cols)
    ]


def block_class_counts(
    mask: Tensor, blocks: Sequence[Block], num_classes: int
) -> np.ndarray:
    """Pixels of each class in each block.

    Args:
        mask: class indices of the scene, [H, W].
        blocks: the blocks.
        num_classes: number of classes, unlabelled (0) included.

    Returns:
        int64 counts, [len(blocks), num_classes].
    """
    labels = mask.numpy()
    return np.stack(
        [
            np.bincount(
                labels[top : top + h, left : left + w].ravel(), minlength=num_classes
            )
            for top, left, h, w in blocks
        ]
    )


def stratified_assignment(
    counts: np.ndarray, fractions: Sequence[float], seed: int = 0
) -> np.ndarray:
    """Give each block to train (0), val (1) or test (2) so every part holds every class.

    The test part gets ``round(fractions[2] * blocks)`` blocks (at least one), the
    val part ``round(fractions[1] * blocks)`` (at least one), train the rest. Among
    :data:`CANDIDATES` seeded random assignments, and then single swaps of two
    blocks between parts until none helps, the chosen one has, in order of
    importance: the fewest labelled classes (column 0, unlabelled, is left out)
    missing from train, then from test, then from val; then the smallest sum over
    parts and classes of ``(share of the class in the part - fraction of the
    part) ** 2``. The result depends only on the counts, the fractions and
    ``seed``.

    Args:
        counts: pixels per block and class, [blocks, classes]; column 0 is
            unlabelled.
        fractions: target shares of train, val and test.
        seed: seed of the random candidates.

    Returns:
        the part of each block, int64 [blocks].
    """
    labelled = counts[:, 1:]
    totals = labelled.sum(0)
    present = totals > 0
    target = np.asarray(fractions, dtype=np.float64)[:, None]
    num_blocks = len(counts)
    num_test = max(1, round(fractions[2] * num_blocks))
    num_val = max(1, round(fractions[1] * num_blocks))
    parts = np.zeros(num_blocks, dtype=np.int64)
    parts[:num_test] = 2
    parts[num_test : num_test + num_val] = 1

    def score(assignments: np.ndarray) -> np.ndarray:
        # [S, blocks] parts -> [S, 4] keys, the most important last (np.lexsort).
        onehot = assignments[..., None] == np.arange(3)
        per_part = np.einsum('sbp,bc->spc', onehot, labelled)[..., present]
        missing = (per_part == 0).sum(-1)
        shares = per_part / totals[present]
        deviation = ((shares - target) ** 2).sum((1, 2))
        return np.stack([deviation, missing[:, 1], missing[:, 2], missing[:, 0]], 1)

    def best(keys: np.ndarray) -> int:
        return int(np.lexsort(keys.T)[0])

    generator = np.random.default_rng(seed)
    candidates = parts[np.argsort(generator.random((CANDIDATES, num_blocks)), axis=1)]
    chosen = candidates[best(score(candidates))]
    while True:
        pairs = [
            (i, j)
            for i in range(num_blocks)
            for j in range(i + 1, num_blocks)
            if chosen[i] != chosen[j]
        ]
        swapped = np.repeat(chosen[None], len(pairs) + 1, axis=0)
        for row, (i, j) in enumerate(pairs, start=1):
            swapped[row, i], swapped[row, j] = chosen[j], chosen[i]
        index = best(score(swapped))
        if index == 0:
            return chosen
        chosen = swapped[index]
