"""A simulated device's impression log: every item it showed, in which slot, and whether it was clicked.

Clicks alone cannot separate "not liked" from "not looked at": an item never clicked in slot 9 says little, one
never clicked in slot 0 says a lot. So a device logs what it showed with the slot, the way a real client would
send `impression` behaviors, and a learner (`service.edge.position_bias`) reads them with the features of each
item. The log is bounded: the newest `capacity` impressions are kept, so a device's memory does not grow with
the length of a run (10,000 devices x 2 days fit in a few MB).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Hashable, Sequence

import numpy as np

from service.edge.position_bias import ImpressionLog

DEFAULT_CAPACITY = 5000  # impressions kept per device: 500 slates of ten


class ImpressionBuffer:
    """Append-only, bounded: (item key, slot, clicked, time) of the newest `capacity` impressions."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.items: list[Hashable] = []
        self.slots = array("H")
        self.clicked = array("B")
        self.ts = array("d")
        self.total = 0  # impressions ever logged, including the ones dropped for capacity

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: Hashable, slot: int, clicked: bool, ts: float) -> None:
        self.items.append(item)
        self.slots.append(slot)
        self.clicked.append(1 if clicked else 0)
        self.ts.append(ts)
        self.total += 1
        if len(self.items) > self.capacity + self.capacity // 4:  # trim in batches: amortised O(1) per add
            drop = len(self.items) - self.capacity
            del self.items[:drop], self.slots[:drop], self.clicked[:drop], self.ts[:drop]

    def clicks(self) -> int:
        return sum(self.clicked[-self.capacity :])

    def to_log(self, features_of: Callable[[Sequence[Hashable]], np.ndarray]) -> ImpressionLog:
        """The newest `capacity` impressions as a validated `ImpressionLog`; `features_of(items)` -> (n, d)."""
        items = self.items[-self.capacity :]
        return ImpressionLog.of(
            np.array(self.slots[-self.capacity :], dtype=np.int64),
            np.array(self.clicked[-self.capacity :], dtype=np.float64),
            features_of(items),
        )
