"""A Bloom filter on a numpy bit array, tested and filled a whole batch of 64-bit keys at a time.

Bit positions come from double hashing (Kirsch & Mitzenmacher): g_i = (h1 + i * h2) mod m, with
h1 = fmix64(key ^ H1_SALT) mod m and h2 = fmix64(key ^ H2_SALT) mod (m - 1) + 1 (never 0). A partitioned
filter picks a key's partition from a third re-mix, fmix64(key ^ PARTITION_SALT) mod P (``partition_of_keys``):
the partition, h1 and h2 come from independent bits, so the keys of one partition still spread over all of its
bit positions. (Taking both the partition and h1 from the key's own residues, key mod P and key mod m, confines a
partition's first probes to the positions congruent to it modulo gcd(m, P), and with them, whenever h2 shares that
factor, every probe: the false-positive rate then runs several times over its target.) Two implementations of the same positions:
numpy over a whole batch (``contains``, ``add``, ``first_occurrences(backend="numpy")``) and one compiled
pass over the batch (``first_occurrences``' default), which walks the keys in order and so also catches a
key repeated inside the batch by testing the bits its first occurrence just set.

Sizing follows the textbook optimum: m = -n ln p / (ln 2)^2 bits and
k = round(m / n ln 2) positions for n keys at false-positive rate p.
"""

from __future__ import annotations

import io
import math

import numpy as np

from gristmill.dedup.hash_constants import H1_SALT, H2_SALT, PARTITION_SALT
from gristmill.dedup.hashing import fmix64, kernels
from gristmill.core.storage import BackgroundWrites, Location, resolve

# What a saved filter's bit positions and partition files mean: a filter loads only into this layout.
LAYOUT = "double-hash-remixed-v2"


def partition_of_keys(keys: np.ndarray, num_partitions: int) -> np.ndarray:
    """The partition of each 64-bit key, from hash bits independent of its bit positions in a filter."""
    mixed = fmix64(np.asarray(keys, dtype=np.uint64) ^ PARTITION_SALT)
    return (mixed % np.uint64(num_partitions)).astype(np.int64)


def theoretical_fp_rate(num_bits: int, num_hashes: int, inserted) -> np.ndarray | float:
    """(1 - e^(-k n / m))^k: the false-positive rate of a filter holding ``inserted`` distinct keys."""
    return (1.0 - np.exp(-num_hashes * np.asarray(inserted, dtype=np.float64) / num_bits)) ** num_hashes


def optimal_size(capacity: int, fp_rate: float) -> tuple[int, int]:
    """(bits, hashes) for ``capacity`` keys at false-positive rate ``fp_rate``."""
    capacity = max(int(capacity), 1)
    bits = max(1024, int(math.ceil(-capacity * math.log(fp_rate) / math.log(2) ** 2)))
    hashes = max(1, int(round(bits / capacity * math.log(2))))
    return bits, hashes


class BloomFilter:
    def __init__(self, num_bits: int, num_hashes: int, words: np.ndarray | None = None, inserted: int = 0):
        self.num_bits = int(num_bits)
        self.num_hashes = int(num_hashes)
        n_words = (self.num_bits + 63) // 64
        self.words = np.zeros(n_words, dtype=np.uint64) if words is None else words
        if len(self.words) != n_words:
            raise ValueError(f"bit array of {len(self.words)} words does not hold {self.num_bits} bits")
        self.inserted = int(inserted)

    @classmethod
    def for_capacity(cls, capacity: int, fp_rate: float) -> "BloomFilter":
        return cls(*optimal_size(capacity, fp_rate))

    def _positions(self, keys: np.ndarray) -> np.ndarray:
        """(len(keys), k) bit positions."""
        m = np.uint64(self.num_bits)
        h1 = fmix64(keys.astype(np.uint64) ^ H1_SALT) % m
        h2 = fmix64(keys.astype(np.uint64) ^ H2_SALT) % (m - np.uint64(1)) + np.uint64(1)
        i = np.arange(self.num_hashes, dtype=np.uint64)
        return (h1[:, None] + i[None, :] * h2[:, None]) % m

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Boolean per key: all k bits set (a possible member) or not (certainly never inserted)."""
        if len(keys) == 0:
            return np.zeros(0, dtype=bool)
        pos = self._positions(keys)
        bits = (self.words[pos >> np.uint64(6)] >> (pos & np.uint64(63))) & np.uint64(1)
        return bits.all(axis=1)

    def add(self, keys: np.ndarray) -> None:
        if len(keys) == 0:
            return
        pos = self._positions(keys).ravel()
        word = (pos >> np.uint64(6)).astype(np.int64)
        mask = np.uint64(1) << (pos & np.uint64(63))
        np.bitwise_or.at(self.words, word, mask)
        self.inserted += len(keys)

    def fill_ratio(self) -> float:
        return float(np.bitwise_count(self.words).sum()) / self.num_bits

    def estimated_fp_rate(self) -> float:
        """False-positive rate at the current fill: (share of set bits)^k."""
        return self.fill_ratio() ** self.num_hashes

    def expected_false_positives(self, reported_new: int, read_only: bool) -> float:
        """Expected number of absent keys a ``first_occurrences`` call that reported ``reported_new`` new keys
        (and, unless ``read_only``, has inserted them) wrongly reported as present. An absent key tested
        while the filter holds j keys is a false positive with probability f(j) = (1 - e^(-kj/m))^k, so per
        key reported new there were f / (1 - f) false positives on average. Read-only, the fill is the one
        measured; otherwise the j-th key inserted met the filter holding j keys."""
        if reported_new <= 0:
            return 0.0
        if read_only:
            f = self.estimated_fp_rate()
            return reported_new * f / (1.0 - f) if f < 1.0 else float("inf")
        held = np.arange(self.inserted - reported_new, self.inserted)
        f = theoretical_fp_rate(self.num_bits, self.num_hashes, held)
        return float(np.sum(f / (1.0 - f)))

    def first_occurrences(self, keys: np.ndarray, read_only: bool = False, backend: str = "numba") -> np.ndarray:
        """Boolean per key, in the given order: True where the key is new, i.e. neither (probably) in the
        filter nor equal to an earlier key of this batch. Unless ``read_only``, the new keys are inserted."""
        keys = np.asarray(keys, dtype=np.uint64)
        if len(keys) == 0:
            return np.zeros(0, dtype=bool)
        if backend == "numba":
            new = np.empty(len(keys), dtype=bool)
            kernels().bloom_test_and_insert(self.words, keys, np.uint64(self.num_bits), self.num_hashes, read_only, new)
            if not read_only:
                self.inserted += int(new.sum())
            return new
        seen = self.contains(keys)
        if read_only:
            return ~seen
        _, first = np.unique(keys, return_index=True)
        new = np.zeros(len(keys), dtype=bool)
        new[first] = True
        new &= ~seen
        self.add(keys[new])
        return new

    # --- persistence ------------------------------------------------------------------------------------

    def save(self, path: str | Location, writes: BackgroundWrites | None = None) -> None:
        """Write the filter (with ``writes``: uploaded in the background, ended by ``writes.join()``)."""
        meta = np.array([self.num_bits, self.num_hashes, self.inserted], dtype=np.int64)
        buffer = io.BytesIO()
        np.savez(buffer, words=self.words, meta=meta)
        if writes is not None:
            writes.write_bytes(resolve(path), buffer.getvalue())
        else:
            resolve(path).write_bytes(buffer.getvalue())

    @classmethod
    def load(cls, path: str | Location) -> "BloomFilter":
        location = resolve(path)
        try:
            with np.load(io.BytesIO(location.read_bytes())) as z:
                bits, hashes, inserted = (int(x) for x in z["meta"])
                return cls(bits, hashes, z["words"].copy(), inserted)
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{location}: not a saved gristmill Bloom filter ({exc})") from None


def save_partitioned(directory: str | Location, filters: list[BloomFilter], meta: dict) -> None:
    """A partitioned filter: one ``partition-NNNN.npz`` per partition (uploaded together) and ``bloom.json``,
    written once every partition is."""
    with BackgroundWrites() as writes:
        for p, f in enumerate(filters):
            f.save(partition_path(directory, p), writes)
    meta_path(directory).write_json(dict(meta, partitions=len(filters)))


def load_meta(directory: str | Location) -> dict:
    path = meta_path(directory)
    if not path.is_file():
        raise ValueError(f"{path} is missing: {str(directory)!r} is not a saved gristmill Bloom filter")
    return path.read_json()


def meta_path(directory: str | Location) -> Location:
    return resolve(directory) / "bloom.json"


def partition_path(directory: str | Location, partition: int) -> Location:
    return resolve(directory) / f"partition-{partition:04d}.npz"
