"""Which column each box of the flow diagram goes in, in which order, and at what height.

Columns PROGRAMS | EXCHANGES (by depth) | QUEUES | CONSUMERS. Each box is put as near in
height to the boxes it is linked with as its column's order allows: straight edges are
easy to follow and leave room for their labels. The heights are a weighted least-squares
fit under the column's order (pool-adjacent-violators), column by column, sweeping left to
right and back until they settle; deterministic, a few milliseconds for 50 boxes.
"""

from __future__ import annotations

from collections import defaultdict

from helpers.view.boxes import Box
from helpers.view.picture import CONSUMERS, EXCHANGES, PROGRAMS, QUEUES, Edge, Node

SWEEPS = 12


def column_key(node: Node) -> int:
    """Left to right: programs, exchanges by depth (at most 3 behind), queues, consumers."""
    keys = {PROGRAMS: 0, EXCHANGES: 1 + max(0, min(node.depth, 3)), QUEUES: 5, CONSUMERS: 6}
    return keys.get(node.column, 5)


def columns_of(nodes: list[Node], edges: list[Edge]) -> list[list[Node]]:
    """The nodes by column, each in the picture's order (so boxes do not jump between
    renders), ties broken by where their left-hand neighbours are (fewer crossings), then
    by id; consumers in their queues' order first (crossing deliveries put their counts
    together)."""
    keys = sorted({column_key(n) for n in nodes})
    columns: list[list[Node]] = [[] for _ in keys]
    for n in nodes:
        columns[keys.index(column_key(n))].append(n)
    rank: dict[str, float] = {}
    sources: dict[str, list[str]] = defaultdict(list)
    for e in edges:
        sources[e.target].append(e.source)
    for col in columns:

        def bary(n: Node) -> float:
            seen = [rank[s] for s in sources[n.id] if s in rank]
            return sum(seen) / len(seen) if seen else 1e9

        if col and col[0].column == CONSUMERS:
            col.sort(key=lambda n: (bary(n), n.order, n.id))
        else:
            col.sort(key=lambda n: (n.order, bary(n), n.id))
        rank.update({n.id: float(i) for i, n in enumerate(col)})
    return columns


def pack(targets: list[float], weights: list[float], gaps: list[float]) -> list[float]:
    """Tops nearest `targets` (weighted least squares) keeping each box `gaps[i]` below the
    one before: pool-adjacent-violators on the tops less their least offsets."""
    offsets = [0.0]
    for g in gaps:
        offsets.append(offsets[-1] + g)
    blocks: list[list[float]] = []  # [value, weight, count]
    for t, o, w in zip(targets, offsets, weights, strict=True):
        blocks.append([t - o, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    z = [v for v, _w, n in blocks for _ in range(int(n))]
    return [zi + o for zi, o in zip(z, offsets, strict=True)]


def arrange(
    columns: list[list[Box]], links: list[tuple[str, str]], rows: float, top: float
) -> None:
    """Each box's height (its `y`): near the boxes it is linked with, in its column's order,
    `rows` px apart at least, the highest `top` px from the top."""
    near: dict[str, list[str]] = defaultdict(list)
    for a, b in links:
        near[a].append(b)
        near[b].append(a)
    by_id = {b.node.id: b for col in columns for b in col}
    gaps = [[a.h + rows + b.above for a, b in zip(col, col[1:], strict=False)] for col in columns]
    for col, g in zip(columns, gaps, strict=True):
        tops = pack([0.0] * len(col), [1.0] * len(col), g)
        middle = (tops[-1] + col[-1].h) / 2
        for b, y in zip(col, tops, strict=True):
            b.y = y - middle
    for sweep in range(SWEEPS):
        order = range(len(columns)) if sweep % 2 == 0 else range(len(columns) - 1, -1, -1)
        for k in order:
            col, targets, weights = columns[k], [], []
            for b in col:
                others = [by_id[i] for i in near[b.node.id]]
                if others:
                    targets.append(sum(o.cy for o in others) / len(others) - b.h / 2)
                    weights.append(float(len(others)))
                else:
                    targets.append(b.y)
                    weights.append(0.01)
            for b, y in zip(col, pack(targets, weights, gaps[k]), strict=True):
                b.y = y
    highest = min((b.y - b.above for col in columns for b in col), default=0.0)
    for col in columns:
        for b in col:
            b.y = round(b.y - highest + top, 1)
