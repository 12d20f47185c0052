"""The constants of dedup's hash functions, shared by their numpy references (``hashing``, ``minhash``,
``bloom``) and the compiled kernels (``_kernels``), which both must compute exactly the same values."""

import numpy as np

GOLDEN64 = 0x9E3779B97F4A7C15
LENGTH_MULT = 0xD6E8FEB86659FD93
# The two multipliers of MurmurHash3's 64-bit finalizer (fmix64).
FMIX_C1 = 0xFF51AFD7ED558CCD
FMIX_C2 = 0xC4CEB9FE1A85EC53
SHINGLE_MULT = 0x9FB21C651E98DF25  # odd multiplier combining consecutive token hashes
SHINGLE_LEN_MULT = 0xC2B2AE3D27D4EB4F
# The Bloom filter's re-mixes of a key: first and second hash (double hashing) and, independent of both, its
# partition.
H1_SALT = np.uint64(0x6A09E667F3BCC909)
H2_SALT = np.uint64(0x2545F4914F6CDD1D)
PARTITION_SALT = np.uint64(0xBB67AE8584CAA73B)
