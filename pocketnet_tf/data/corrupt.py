"""Counting skipped records: once per record, whether Python or a TensorFlow op found the fault.

Python-side readers report a problem with :meth:`CorruptRecordCounter.add` and a key naming the
record (a position or a record key), so a record read again in a later epoch is not counted
again. The native decoder marks positions in a boolean ``tf.Variable`` (one per dataset, made by
:meth:`CorruptRecordCounter.native_mask`); :attr:`CorruptRecordCounter.count` is the size of the
union of both sets.
"""

from __future__ import annotations

import threading

from absl import logging

__all__ = ["CorruptRecordCounter"]


class CorruptRecordCounter:
    """Thread-safe count of skipped records, with the first messages kept.

    The first ``log_first`` problems are logged as warnings one by one, then one warning per
    ``log_every`` more, so a badly damaged file is visible in the log without flooding it.

    Attributes:
      messages: the first ``keep`` messages.
      describe: ``position -> str`` naming a record, used for the records the native decoder
        rejects (set by the source that owns the counter).
    """

    def __init__(self, *, log_first: int = 10, log_every: int = 1000, keep: int = 100):
        self._lock = threading.Lock()
        self._keys: set = set()
        self._anonymous = 0
        self.messages: list[str] = []
        self._log_first = log_first
        self._log_every = log_every
        self._keep = keep
        self._mask = None
        self._reported_native: set[int] = set()
        self.describe = None

    def add(self, message: str, key=None) -> None:
        """Counts one record (once per ``key``; every call without a key counts)."""
        with self._lock:
            if key is not None:
                if key in self._keys:
                    return
                self._keys.add(key)
            else:
                self._anonymous += 1
            n = len(self._keys) + self._anonymous
            if len(self.messages) < self._keep:
                self.messages.append(message)
        if n <= self._log_first:
            logging.warning("skipping corrupt record (%d so far): %s", n, message)
        elif n % self._log_every == 0:
            logging.warning("%d corrupt records skipped so far; latest: %s", n, message)

    def native_mask(self, size: int):
        """The ``bool[size]`` variable in which the native decoder marks undecodable positions
        (created on first use; the same one for every dataset built from this source)."""
        import tensorflow as tf

        with self._lock:
            if self._mask is None:
                with tf.init_scope(), tf.device("/cpu:0"):
                    self._mask = tf.Variable(tf.zeros([max(int(size), 1)], tf.bool), trainable=False,
                                             name="corrupt_positions")
            return self._mask

    def _collect_native(self) -> None:
        """Moves the positions marked by the native decoder into the keyed set (with messages)."""
        if self._mask is None:
            return
        import numpy as np

        for position in np.flatnonzero(self._mask.numpy()).tolist():
            if position in self._reported_native:
                continue
            self._reported_native.add(position)
            where = self.describe(position) if self.describe is not None else f"position {position}"
            self.add(f"{where}: cannot decode image (rejected by the TensorFlow decoder)", key=("pos", position))

    @property
    def count(self) -> int:
        self._collect_native()
        with self._lock:
            return len(self._keys) + self._anonymous

    def summary(self) -> str:
        n = self.count
        if n == 0:
            return "no corrupt records"
        return f"{n} corrupt record(s) skipped; first: {self.messages[0]}"

    def __repr__(self) -> str:
        return f"CorruptRecordCounter(count={self.count})"
