"""RFC 6962 (Certificate Transparency) Merkle tree hashing over the audit records.

``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``; the tree of n
leaves splits at the largest power of two below n (RFC 6962 section 2.1). The writer keeps only the
:class:`Frontier` (the roots of the perfect subtrees, at most log2(n) + 1 hashes); the verifier and
``b2b-otel audit prove`` work on the list of leaf hashes.

Example::

    frontier = Frontier()
    for record in (b"a", b"b", b"c"):
        frontier.append(leaf_hash(record))
    leaves = [leaf_hash(r) for r in (b"a", b"b", b"c")]
    path = inclusion_proof(leaves, 1)
    assert verify_inclusion(leaves[1], 1, 3, path, frontier.root())
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the empty tree (RFC 6962: the hash of the empty string)."""


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The incremental state of the tree: the roots of its perfect subtrees, largest first.

    A tree of ``size`` leaves has one subtree per set bit of ``size``; appending a leaf merges equal
    subtrees, so an append costs O(1) hashes amortised and O(log n) at most.
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != bin(size).count("1"):
            raise ValueError(f"a frontier of a tree of {size} leaves has {bin(size).count('1')} hashes")
        self.size = size
        self.hashes = list(hashes)

    def copy(self) -> Frontier:
        return Frontier(self.size, self.hashes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        self.hashes.append(leaf)
        self.size += 1
        merged = self.size
        while merged & 1 == 0:  # each trailing zero bit: two equal subtrees became one
            right = self.hashes.pop()
            left = self.hashes.pop()
            self.hashes.append(node_hash(left, right))
            merged >>= 1

    def root(self) -> bytes:
        """The tree's root hash (RFC 6962 MTH)."""
        if not self.hashes:
            return EMPTY_ROOT
        result = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            result = node_hash(left, result)
        return result

    def to_json(self) -> dict[str, object]:
        return {"size": self.size, "frontier": [h.hex() for h in self.hashes]}

    @classmethod
    def from_json(cls, obj: object) -> Frontier:
        """Raises ValueError when ``obj`` is not ``{"size": n, "frontier": [hex, ...]}`` of a tree of n."""
        if not isinstance(obj, dict) or set(obj) != {"size", "frontier"}:
            raise ValueError("not a tree state")
        size, hashes = obj["size"], obj["frontier"]
        if not isinstance(size, int) or isinstance(size, bool) or not isinstance(hashes, list):
            raise ValueError("not a tree state")
        try:
            raw = [bytes.fromhex(h) for h in hashes]
        except (TypeError, ValueError) as exc:
            raise ValueError("tree state hashes are not hex") from exc
        if any(len(h) != 32 for h in raw):
            raise ValueError("tree state hashes are not SHA-256")
        return cls(size, raw)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """The root of the tree over ``leaves`` (leaf hashes)."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


def _subtree_root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    if hi - lo == 1:
        return leaves[lo]
    k = _split(hi - lo)
    return node_hash(_subtree_root(leaves, lo, lo + k), _subtree_root(leaves, lo + k, hi))


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of the first ``size`` leaves (RFC 6962 PATH)."""
    n = len(leaves) if size is None else size
    if not 0 <= index < n <= len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {n} leaves")
    path: list[bytes] = []
    lo, hi = 0, n
    while hi - lo > 1:  # top-down; the path is listed bottom-up
        k = _split(hi - lo)
        if index < lo + k:
            path.append(_subtree_root(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(_subtree_root(leaves, lo, lo + k))
            lo = lo + k
    path.reverse()
    return path


def root_from_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """The root an audit path leads to (RFC 9162 section 2.1.3.2), or None when the path cannot fit."""
    if not 0 <= index < size:
        return None
    fn, sn = index, size - 1
    result = leaf
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return result if sn == 0 else None


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    """Whether ``path`` proves that ``leaf`` is leaf ``index`` of the tree of ``size`` with ``root``."""
    return root_from_inclusion(leaf, index, size, path) == root


def consistency_proof(leaves: Sequence[bytes], old_size: int, new_size: int | None = None) -> list[bytes]:
    """The RFC 6962 (section 2.1.2) consistency proof that the tree of the first ``old_size`` leaves is
    a prefix of the tree of the first ``new_size`` (default: all ``leaves``).

    Empty when the sizes are equal or ``old_size`` is 0 (every tree extends the empty one). Raises
    ValueError unless ``0 <= old_size <= new_size <= len(leaves)``.
    """
    n = len(leaves) if new_size is None else new_size
    if not 0 <= old_size <= n <= len(leaves):
        raise ValueError(f"no consistency proof from {old_size} to {n} leaves (of {len(leaves)})")
    if old_size in (0, n):
        return []
    proof: list[bytes] = []
    lo, hi, m, whole = 0, n, old_size, True
    # SUBPROOF(m, D[lo:hi], whole), walked top-down; the hashes it appends come out last-first.
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(_subtree_root(leaves, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_subtree_root(leaves, lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        proof.append(_subtree_root(leaves, lo, hi))
    proof.reverse()
    return proof


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows that the tree of ``old_size`` with ``old_root`` is a prefix of the tree
    of ``new_size`` with ``new_root`` (RFC 9162 section 2.1.4.2)."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
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
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
