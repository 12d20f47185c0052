"""Deduplication: vectorized MinHash signatures interchangeable with datasketch (``minhash``), LSH banding
(``lsh``), partitioned connected components (``components``), a batch Bloom filter (``bloom``), the shared
normalization/tokenization (``normalize``) and hashing (``hashing``), the compiled kernels (``_kernels``),
and the registered global stages ``dedup.minhash_v1`` and ``dedup.bloom_v1`` (``stages``)."""
