"""RFC 9162 Merkle tree hashing: known answers, the incremental tree and every small proof."""

from __future__ import annotations

import hashlib

import pytest

from stafett_log.merkle import (
    EMPTY_ROOT,
    CompactRange,
    SparseLeaves,
    TreeBuilder,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    tile_roots,
    verify_consistency,
    verify_inclusion,
)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(f"melding {i}".encode()) for i in range(n)]


def flip_bit(value: bytes, bit: int = 0) -> bytes:
    changed = bytearray(value)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


# --- known answers, written out from the definitions in RFC 9162 §2.1.1 -----------------

D = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43", b"ABCDEFGH"]
# The leaf hashes of D, as SHA-256 over 0x00 ‖ entry.
A, B, C, DD, E, F, G6 = (sha256(b"\x00" + d) for d in D)


def test_the_empty_tree_hashes_to_sha256_of_the_empty_string() -> None:
    assert root([]) == EMPTY_ROOT == sha256(b"")
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"abc") == sha256(b"\x00abc")
    assert node_hash(A, B) == sha256(b"\x01" + A + B)
    assert leaf_hash(A + B) != node_hash(A, B)


def test_a_tree_of_one_leaf_is_that_leaf() -> None:
    assert root([A]) == A == sha256(b"\x00")


def test_a_tree_of_two_leaves_hashes_them_as_one_node() -> None:
    assert root([A, B]) == sha256(b"\x01" + A + B)


def test_a_tree_of_three_leaves_splits_at_two() -> None:
    ab = sha256(b"\x01" + A + B)
    assert root([A, B, C]) == sha256(b"\x01" + ab + C)


def test_a_tree_of_seven_leaves_splits_at_four_then_two() -> None:
    # The example tree of RFC 6962 §2.1.3: k = hash(g, h), l = hash(i, j), root = hash(k, l).
    g = sha256(b"\x01" + A + B)
    h = sha256(b"\x01" + C + DD)
    i = sha256(b"\x01" + E + F)
    j = G6
    k = sha256(b"\x01" + g + h)
    l_ = sha256(b"\x01" + i + j)
    seven = [A, B, C, DD, E, F, G6]
    assert root(seven) == sha256(b"\x01" + k + l_)
    # RFC 6962 §2.1.3's audit paths in that tree.
    assert inclusion_proof(0, seven) == [B, h, l_]
    assert inclusion_proof(3, seven) == [C, g, l_]
    assert inclusion_proof(4, seven) == [F, j, k]
    assert inclusion_proof(6, seven) == [i, k]
    # RFC 6962 §2.1.3's consistency proofs from sizes 3, 4 and 6.
    assert consistency_proof(3, seven) == [C, DD, g, l_]
    assert consistency_proof(4, seven) == [l_]
    assert consistency_proof(6, seven) == [i, j, k]


def test_roots_match_the_certificate_transparency_reference_trees() -> None:
    # The leaves and tree heads of transparency-dev/merkle's testonly/constants.go, the
    # reference data of RFC 6962 implementations: an independent implementation's answers.
    data = [
        bytes.fromhex(h)
        for h in (
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        )
    ]
    expected = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    hashes = [leaf_hash(d) for d in data]
    for size in range(1, 9):
        assert root(hashes[:size]).hex() == expected[size - 1]


# --- the incremental tree ---------------------------------------------------------------


def test_the_incremental_tree_gives_the_same_root_as_the_whole_tree_for_sizes_0_to_300() -> None:
    all_leaves = leaves(300)
    tree = CompactRange()
    assert tree.root() == root([])
    for size in range(1, 301):
        tree.append(all_leaves[size - 1])
        assert tree.size == size
        assert tree.root() == root(all_leaves[:size]), size


def test_the_incremental_tree_holds_one_hash_per_set_bit_of_its_size() -> None:
    tree = TreeBuilder()
    tree.extend(leaves(1000))
    assert len(tree.hashes) == bin(1000).count("1") == 6


def test_the_incremental_tree_resumes_from_its_saved_state() -> None:
    all_leaves = leaves(77)
    first = CompactRange()
    first.extend(all_leaves[:50])
    resumed = CompactRange.from_state(first.size, first.hashes)
    resumed.extend(all_leaves[50:])
    assert resumed.root() == root(all_leaves)


@pytest.mark.parametrize("width", [1, 2, 4, 8, 16])
def test_a_perfect_subtree_appended_by_its_root_is_the_same_as_its_leaves(width: int) -> None:
    all_leaves = leaves(200)
    whole = CompactRange()
    by_subtree = CompactRange()
    for start in range(0, 192, width):
        part = all_leaves[start : start + width]
        whole.extend(part)
        by_subtree.append_subtree(root(part), width)
        assert (by_subtree.size, by_subtree.hashes) == (whole.size, whole.hashes)
        assert by_subtree.root() == root(all_leaves[: start + width])
    by_subtree.extend(all_leaves[192:])  # leaf by leaf again after subtrees
    assert by_subtree.root() == root(all_leaves)


def test_a_subtree_that_is_not_perfect_or_not_aligned_is_refused() -> None:
    tree = CompactRange()
    tree.extend(leaves(3))
    with pytest.raises(ValueError, match="power of two"):
        tree.append_subtree(root(leaves(2)), 2)  # 3 is not a multiple of 2
    with pytest.raises(ValueError, match="power of two"):
        CompactRange().append_subtree(root(leaves(3)), 3)
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange().append_subtree(b"kort", 4)
    assert tree.size == 3


def test_a_saved_state_with_the_wrong_number_of_hashes_is_refused() -> None:
    with pytest.raises(ValueError, match="subtree roots"):
        CompactRange.from_state(6, [A])


def test_a_leaf_that_is_not_a_hash_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange().append(b"not a hash")


# --- inclusion proofs -------------------------------------------------------------------


def test_every_inclusion_proof_in_trees_of_1_to_64_leaves_verifies() -> None:
    for size in range(1, 65):
        tree = leaves(size)
        tree_root = root(tree)
        for index in range(size):
            proof = inclusion_proof(index, tree)
            assert verify_inclusion(tree[index], index, size, proof, tree_root), (size, index)


def test_an_inclusion_proof_with_one_bit_flipped_fails() -> None:
    for size in (2, 3, 5, 8, 13, 64):
        tree = leaves(size)
        tree_root = root(tree)
        for index in range(size):
            proof = inclusion_proof(index, tree)
            for position in range(len(proof)):
                for bit in (0, 131, 255):
                    bad = list(proof)
                    bad[position] = flip_bit(bad[position], bit)
                    assert not verify_inclusion(tree[index], index, size, bad, tree_root)
            assert not verify_inclusion(flip_bit(tree[index]), index, size, proof, tree_root)
            assert not verify_inclusion(tree[index], index, size, proof, flip_bit(tree_root))


def test_an_inclusion_proof_for_the_wrong_index_fails() -> None:
    for size in (2, 3, 7, 16, 33):
        tree = leaves(size)
        tree_root = root(tree)
        for index in range(size):
            proof = inclusion_proof(index, tree)
            for other in range(size):
                if other != index:
                    assert not verify_inclusion(tree[index], other, size, proof, tree_root)
                    assert not verify_inclusion(tree[other], index, size, proof, tree_root)


def test_an_inclusion_proof_for_the_wrong_size_or_with_extra_hashes_fails() -> None:
    tree = leaves(10)
    tree_root = root(tree)
    proof = inclusion_proof(9, tree)
    assert not verify_inclusion(tree[9], 9, 9, proof, tree_root)
    assert not verify_inclusion(tree[9], 9, 11, proof, tree_root)
    assert not verify_inclusion(tree[9], 9, 10, [*proof, A], tree_root)
    assert not verify_inclusion(tree[9], 9, 10, proof[:-1], tree_root)
    assert not verify_inclusion(tree[9], 10, 10, proof, tree_root)
    assert not verify_inclusion(tree[9], -1, 10, proof, tree_root)


def test_the_only_leaf_of_a_tree_of_one_has_an_empty_inclusion_proof() -> None:
    assert inclusion_proof(0, [A]) == []
    assert verify_inclusion(A, 0, 1, [], A)
    with pytest.raises(ValueError, match="outside"):
        inclusion_proof(1, [A])


# --- consistency proofs -----------------------------------------------------------------


def test_every_consistency_proof_between_sizes_up_to_40_verifies() -> None:
    tree = leaves(40)
    roots = [root(tree[:size]) for size in range(41)]
    for n in range(1, 41):
        for m in range(1, n + 1):
            proof = consistency_proof(m, tree[:n])
            assert verify_consistency(m, n, roots[m], roots[n], proof), (m, n)


def test_a_consistency_proof_with_one_bit_flipped_fails() -> None:
    tree = leaves(40)
    roots = [root(tree[:size]) for size in range(41)]
    for n in range(2, 41):
        for m in range(1, n):
            proof = consistency_proof(m, tree[:n])
            for position in range(len(proof)):
                bad = list(proof)
                bad[position] = flip_bit(bad[position], (7 * m + n) % 256)
                assert not verify_consistency(m, n, roots[m], roots[n], bad), (m, n, position)
            assert not verify_consistency(m, n, flip_bit(roots[m]), roots[n], proof)
            assert not verify_consistency(m, n, roots[m], flip_bit(roots[n]), proof)


def test_a_consistency_proof_for_other_sizes_fails() -> None:
    tree = leaves(40)
    roots = [root(tree[:size]) for size in range(41)]
    for n in range(2, 41):
        for m in range(1, n):
            proof = consistency_proof(m, tree[:n])
            for other in (m - 1, m + 1):
                if 1 <= other < n:
                    assert not verify_consistency(other, n, roots[other], roots[n], proof)
            if n < 40:
                assert not verify_consistency(m, n + 1, roots[m], roots[n + 1], proof)
            assert not verify_consistency(n, m, roots[n], roots[m], proof)


def test_a_different_history_is_not_consistent() -> None:
    tree = leaves(20)
    forked = [*tree[:7], leaf_hash(b"en annen historie"), *tree[8:]]
    proof = consistency_proof(10, forked)
    assert not verify_consistency(10, 20, root(tree[:10]), root(forked), proof)


def test_equal_sizes_and_the_empty_tree_need_empty_consistency_proofs() -> None:
    tree = leaves(9)
    nine = root(tree)
    assert consistency_proof(9, tree) == []
    assert verify_consistency(9, 9, nine, nine, [])
    assert not verify_consistency(9, 9, nine, flip_bit(nine), [])
    assert not verify_consistency(9, 9, nine, nine, [A])
    assert consistency_proof(0, tree) == []
    assert verify_consistency(0, 9, EMPTY_ROOT, nine, [])
    assert not verify_consistency(0, 9, A, nine, [])
    assert not verify_consistency(3, 9, root(tree[:3]), nine, [])
    with pytest.raises(ValueError, match="outside"):
        consistency_proof(10, tree)


# --- proofs from tile roots and the few leaves they need ------------------------------------


def _sparse(all_leaves: list[bytes], tile: int, *points: int) -> SparseLeaves:
    """The leaves of the tiles holding ``points`` and of the incomplete last tile, as a
    service reads them beside the stored tile roots."""
    size = len(all_leaves)
    wanted = {p // tile for p in points if 0 <= p < size} | {size // tile}
    return SparseLeaves(size, {i: h for i, h in enumerate(all_leaves) if i // tile in wanted})


@pytest.mark.parametrize("tile", [1, 2, 4, 8])
def test_proofs_from_tile_roots_equal_proofs_from_every_leaf(tile: int) -> None:
    for size in range(1, 41):
        full = leaves(size)
        subtrees = tile_roots(full, tile)
        for index in range(size):
            sparse = _sparse(full, tile, index)
            assert root(sparse, subtrees=subtrees) == root(full)
            assert inclusion_proof(index, sparse, subtrees=subtrees) == inclusion_proof(index, full)
        for first in range(1, size + 1):
            sparse = _sparse(full, tile, first - 1, first)
            assert consistency_proof(first, sparse, subtrees=subtrees) == consistency_proof(
                first, full
            )
            assert root(sparse.prefix(first), subtrees=subtrees) == root(full[:first])


def test_a_proof_that_needs_a_leaf_not_at_hand_says_so() -> None:
    full = leaves(20)
    sparse = SparseLeaves(20, {i: h for i, h in enumerate(full) if i >= 16})
    with pytest.raises(LookupError):
        inclusion_proof(3, sparse, subtrees=tile_roots(full, 8))  # tile 0 is not at hand


def test_tiles_are_a_power_of_two_leaves() -> None:
    with pytest.raises(ValueError, match="power of two"):
        tile_roots(leaves(12), 3)
