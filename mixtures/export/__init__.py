"""Exports of a run's shards for the training stacks that read their own formats, and of its tokenizer.

Each writer reads the shards in manifest order (``rows.shard_batches``) through ``Location`` and writes through
``Location``, so a run and an export directory may each be local or on an object store:

- ``megatron``: a Megatron-LM indexed dataset (``tokens.bin`` / ``tokens.idx``), read by megatron-core's
  ``IndexedDataset``;
- ``mds``: MosaicML Streaming's MDS (``index.json`` + ``shard.NNNNN.mds``), read by ``StreamingDataset``;
- ``jsonl``: one JSON object per packed row, one file per shard;
- ``hf_tokenizer``: the run's tokenizer as a Hugging Face tokenizer folder.

Every token export holds exactly the shards' token stream, row after row in manifest order, with the document
boundaries of each row (``doc_offsets``) kept.
"""
