"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing with SHA-256.

The log service keeps one tree over the whole ``EVENTS`` stream: leaf ``i`` is the hash of
the stored bytes of stream message ``i + 1`` (DESIGN.md, "Tamper evidence"). Leaves and
interior nodes are domain-separated (0x00 and 0x01 prefixes, RFC 9162 §2.1.1), so a leaf can
never be passed off as a node.

The functions that take ``leaves`` take *leaf hashes*, not entries: hash each entry with
:func:`leaf_hash` first. They hold the whole list and are meant for proofs over a range a
service has stored, and for tests; :class:`CompactRange` follows a stream of any length in
O(log n) memory. Only the standard library is used so that an auditor can run this anywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "SparseLeaves",
    "Subtrees",
    "TreeBuilder",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "tile_roots",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the empty tree: the hash of the empty string (RFC 9162 §2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 ‖ data): the hash of one entry as a leaf of the tree."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right): the hash of an interior node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1): where RFC 9162 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


Subtrees = Mapping[tuple[int, int], bytes]
"""Known roots of perfect subtrees, by their leaf range ``(start, end)``: ``_mth`` takes
such a root instead of hashing the leaves under it."""


def _mth(leaves: Sequence[bytes], start: int, end: int, subtrees: Subtrees | None = None) -> bytes:
    """MTH(D[start:end]) without copying the leaves."""
    n = end - start
    if n == 0:
        return EMPTY_ROOT
    if subtrees is not None:
        known = subtrees.get((start, end))
        if known is not None:
            return known
    if n == 1:
        return leaves[start]
    k = _split(n)
    return node_hash(
        _mth(leaves, start, start + k, subtrees), _mth(leaves, start + k, end, subtrees)
    )


class SparseLeaves(Sequence[bytes]):
    """A tree of ``size`` leaves of which only some are at hand (by index), for proofs
    whose other parts come from :data:`Subtrees`. Reading a leaf that is not at hand raises
    ``LookupError``; iterating yields only those at hand."""

    def __init__(self, size: int, known: Mapping[int, bytes]) -> None:
        self._size = size
        self._known = dict(known)

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]
        if not 0 <= index < self._size:
            raise IndexError(index)
        try:
            return self._known[index]
        except KeyError:
            raise LookupError(f"leaf {index} is not at hand") from None

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._known.values())

    def prefix(self, size: int) -> SparseLeaves:
        """The tree of the first ``size`` of these leaves."""
        return SparseLeaves(size, {i: h for i, h in self._known.items() if i < size})


def tile_roots(leaves: Sequence[bytes], tile: int) -> dict[tuple[int, int], bytes]:
    """The roots of the complete tiles of ``tile`` leaves (a power of two) over ``leaves``,
    as :data:`Subtrees`."""
    if tile <= 0 or tile & (tile - 1):
        raise ValueError("a tile holds a power of two leaves")
    return {
        (start, start + tile): _mth(leaves, start, start + tile)
        for start in range(0, len(leaves) - tile + 1, tile)
    }


def _check_hashes(hashes: Iterable[bytes], what: str) -> None:
    for item in hashes:
        if len(item) != HASH_SIZE:
            raise ValueError(f"{what} must be {HASH_SIZE}-byte hashes")


def root(leaves: Sequence[bytes], *, subtrees: Subtrees | None = None) -> bytes:
    """The Merkle tree hash MTH(D[n]) of a list of leaf hashes (RFC 9162 §2.1.1)."""
    _check_hashes(leaves, "leaves")
    return _mth(leaves, 0, len(leaves), subtrees)


def inclusion_proof(
    index: int, leaves: Sequence[bytes], *, subtrees: Subtrees | None = None
) -> list[bytes]:
    """The audit path PATH(index, D[n]) for the leaf at ``index`` (RFC 9162 §2.1.3.1)."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"index {index} is outside a tree of size {len(leaves)}")
    _check_hashes(leaves, "leaves")
    proof: list[bytes] = []
    start, end, m = 0, len(leaves), index
    # PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])  if m < k
    #               = PATH(m - k, D[k:n]) : MTH(D[0:k])  otherwise,
    # unrolled from the root down, so the sibling hashes are collected in reverse.
    while end - start > 1:
        k = _split(end - start)
        if m < k:
            proof.append(_mth(leaves, start + k, end, subtrees))
            end = start + k
        else:
            proof.append(_mth(leaves, start, start + k, subtrees))
            start, m = start + k, m - k
    proof.reverse()
    return proof


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows the leaf at ``index`` in the tree of ``tree_size`` with ``root``.

    RFC 9162 §2.1.3.2.
    """
    if not 0 <= index < tree_size:
        return False
    if len(leaf_hash) != HASH_SIZE or any(len(p) != HASH_SIZE for p in proof):
        return False
    fn, sn = index, tree_size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            fn, sn = _shift_to_set_bit(fn, sn)
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def consistency_proof(
    first_size: int, leaves: Sequence[bytes], *, subtrees: Subtrees | None = None
) -> list[bytes]:
    """PROOF(m, D[n]): shows the tree of ``first_size`` leaves is a prefix of ``leaves``.

    RFC 9162 §2.1.4.1. The proof between equal sizes, and from the empty tree, is empty.
    """
    n = len(leaves)
    if not 0 <= first_size <= n:
        raise ValueError(f"first size {first_size} is outside 0..{n}")
    _check_hashes(leaves, "leaves")
    if first_size in (0, n):
        return []
    return _subproof(first_size, leaves, 0, n, complete=True, subtrees=subtrees)


def _subproof(
    m: int,
    leaves: Sequence[bytes],
    start: int,
    end: int,
    *,
    complete: bool,
    subtrees: Subtrees | None,
) -> list[bytes]:
    """SUBPROOF(m, D[start:end], b) of RFC 9162 §2.1.4.1."""
    n = end - start
    if m == n:
        return [] if complete else [_mth(leaves, start, end, subtrees)]
    k = _split(n)
    if m <= k:
        return [
            *_subproof(m, leaves, start, start + k, complete=complete, subtrees=subtrees),
            _mth(leaves, start + k, end, subtrees),
        ]
    return [
        *_subproof(m - k, leaves, start + k, end, complete=False, subtrees=subtrees),
        _mth(leaves, start, start + k, subtrees),
    ]


def verify_consistency(
    first_size: int,
    second_size: int,
    first_root: bytes,
    second_root: bytes,
    proof: Sequence[bytes],
) -> bool:
    """Whether ``proof`` shows the tree (first_size, first_root) is a prefix of the second.

    RFC 9162 §2.1.4.2, plus the cases the RFC leaves out: equal sizes need an empty proof
    and equal roots, and the empty tree (whose root is :data:`EMPTY_ROOT`) is a prefix of
    every tree with an empty proof.
    """
    if not 0 <= first_size <= second_size or any(len(p) != HASH_SIZE for p in proof):
        return False
    if first_size == second_size:
        return not proof and first_root == second_root
    if first_size == 0:
        return not proof and first_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if first_size & (first_size - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first_size - 1, second_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            fn, sn = _shift_to_set_bit(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


def _shift_to_set_bit(fn: int, sn: int) -> tuple[int, int]:
    """Right-shift both until the low bit of ``fn`` is set or ``fn`` is 0 (RFC 9162 §2.1)."""
    while fn and not fn & 1:
        fn >>= 1
        sn >>= 1
    return fn, sn


class CompactRange:
    """The tree over leaves [0, size), kept as the roots of its perfect subtrees.

    A tree of ``size`` leaves is the left-to-right sequence of perfect subtrees given by the
    binary digits of ``size`` (e.g. 13 = 8 + 4 + 1), so at most ``size.bit_length()`` hashes
    are held, and appending a leaf merges equal-sized subtrees as a binary counter carries.
    This lets a service follow a stream of millions of messages; it can save ``size`` and
    ``hashes`` and resume with :meth:`from_state`.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_state(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Resume from a saved ``size`` and ``hashes`` (one hash per set bit of ``size``)."""
        if size < 0:
            raise ValueError("size must not be negative")
        if len(hashes) != size.bit_count():
            raise ValueError(f"a tree of size {size} has {size.bit_count()} subtree roots")
        _check_hashes(hashes, "subtree roots")
        compact = cls()
        compact._size = size
        compact._hashes = list(hashes)
        return compact

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The roots of the perfect subtrees, largest (leftmost) first."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash (see :func:`leaf_hash`)."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash has {HASH_SIZE} bytes")
        node = leaf
        size = self._size
        # Each trailing 1 bit of the old size is a subtree of the same height as `node`.
        while size & 1:
            node = node_hash(self._hashes.pop(), node)
            size >>= 1
        self._hashes.append(node)
        self._size += 1

    def append_subtree(self, subtree_root: bytes, leaves: int) -> None:
        """Append a perfect subtree of ``leaves`` leaves (a power of two) by its root, where
        the size so far is a multiple of ``leaves``: the same as appending its leaves one by
        one, without their hashes."""
        if leaves <= 0 or leaves & (leaves - 1) or self._size % leaves:
            raise ValueError("a subtree of a power of two leaves, where the size is a multiple")
        if len(subtree_root) != HASH_SIZE:
            raise ValueError(f"a subtree root has {HASH_SIZE} bytes")
        node = subtree_root
        size = self._size // leaves
        # As in append, one level up for each trailing 1 bit, counted in subtrees this size.
        while size & 1:
            node = node_hash(self._hashes.pop(), node)
            size >>= 1
        self._hashes.append(node)
        self._size += leaves

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """The Merkle tree hash at the current size."""
        if not self._hashes:
            return EMPTY_ROOT
        node = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            node = node_hash(left, node)
        return node

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size})"


TreeBuilder = CompactRange
"""Another name for :class:`CompactRange`, for code that thinks of it as building a tree."""
