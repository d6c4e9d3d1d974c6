"""Parameters whose memory partly overlaps: views of one buffer that are not the same view.

Parameters with equal :meth:`~unifyparams.adapter.Adapter.storage_key` are ties (one value under
several names). Two parameters can also be *different* views of one buffer (PyTorch's
``Parameter(w.detach()[:2])`` beside ``w``): writing one changes part of the other, so a load
that writes both would leave whichever came last, silently. :func:`overlapping` finds those
pairs from the adapters' :meth:`~unifyparams.adapter.Adapter.storage_span`, so writers refuse.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .param import Param


def overlapping(params: Iterable[Param]) -> list[tuple[str, str]]:
    """Pairs of names ``(earlier, later)`` whose memory overlaps without being one storage (tied
    names count once). The byte ranges are compared, so interleaved views (``w[:, ::2]`` and
    ``w[:, 1::2]``) are reported too: conservative, never a missed overlap."""
    spans: dict[Hashable, list[tuple[int, int, str]]] = {}
    seen: set[Any] = set()
    for p in params:
        key = p.storage_key
        if key in seen:
            continue
        seen.add(key)
        span = p.adapter.storage_span(p.native)
        if span is not None:
            buffer, start, end = span
            spans.setdefault(buffer, []).append((start, end, p.name))
    pairs: list[tuple[str, str]] = []
    for ranges in spans.values():
        if len(ranges) < 2:
            continue
        ranges.sort()
        open_ranges: list[tuple[int, str]] = []  # (end, name) of ranges that may reach later ones
        for start, end, name in ranges:
            open_ranges = [(e, n) for e, n in open_ranges if e > start]
            pairs.extend((n, name) for _, n in open_ranges)
            open_ranges.append((end, name))
    return pairs


__all__ = ["overlapping"]
