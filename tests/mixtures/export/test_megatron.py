from __future__ import annotations

import numpy as np
import pytest

from shard_rows import row_pieces, token_rows

from gristmill.mixtures.export.exporter import export_run
from gristmill.mixtures.export.megatron import token_dtype

PARAMS = {"mixture": "llama", "seq_len": 48, "rows_per_shard": 40, "row_group_rows": 16, "pad_last": True}


@pytest.fixture
def packed(run_dir, run_pack):
    run_pack(run_dir, PARAMS)
    return run_dir


def test_megatron_indexed_dataset_reads_back_the_shards_token_stream(packed, tmp_path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    summary = export_run(packed, "megatron", tmp_path / "out")
    dataset = IndexedDataset(str(tmp_path / "out" / "tokens"))
    rows = token_rows(packed)
    sequences = [np.asarray(dataset[i]) for i in range(len(dataset))]
    assert np.array_equal(np.concatenate(sequences), rows.reshape(-1))
    # One Megatron document per packed row; its sequences are the row's document pieces.
    assert len(dataset.document_indices) == len(rows) + 1 == summary["documents"] + 1
    pieces = row_pieces(packed)
    for r in (0, 1, len(rows) // 2, len(rows) - 1):
        first, stop = dataset.document_indices[r], dataset.document_indices[r + 1]
        got = sequences[first:stop]
        assert [len(s) for s in got] == [len(p) for p in pieces[r]]
        assert all(np.array_equal(a, b) for a, b in zip(got, pieces[r]))
    assert dataset.index.dtype == np.uint16  # a 700-id vocabulary, as megatron's optimal_dtype picks


def test_every_sequence_but_a_row_end_ends_with_the_separator(packed, tmp_path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    export_run(packed, "megatron", tmp_path / "out")
    dataset = IndexedDataset(str(tmp_path / "out" / "tokens"))
    ends = set(int(i) - 1 for i in dataset.document_indices[1:])
    inner = [i for i in range(len(dataset)) if i not in ends]
    assert inner and all(dataset[i][-1] == 0 for i in inner)  # <|endoftext|> is id 0


def test_token_dtype_follows_megatron():
    from megatron.core.datasets.indexed_dataset import DType

    for vocab in (700, 65499, 65500, 128256, None):
        assert token_dtype(vocab) == np.dtype(DType.optimal_dtype(vocab))


def test_a_large_vocabulary_is_written_as_int32(packed, tmp_path):
    import json

    from megatron.core.datasets.indexed_dataset import IndexedDataset

    manifest = json.loads((packed / "manifest.json").read_text())
    manifest["tokenizer"]["vocab_size"] = 128256
    (packed / "manifest.json").write_text(json.dumps(manifest))
    summary = export_run(packed, "megatron", tmp_path / "out")
    dataset = IndexedDataset(str(tmp_path / "out" / "tokens"))
    assert summary["dtype"] == "int32" and dataset.index.dtype == np.int32
    assert np.array_equal(np.concatenate([dataset[i] for i in range(len(dataset))]), token_rows(packed).reshape(-1))


def test_gpt_dataset_builds_samples_from_the_export_with_the_exported_tokenizer(packed, tmp_path):
    """megatron-core end to end: its tokenizer loaded from the hf-tokenizer export (eod = the separator, pad
    = <|pad|>) and GPTDataset over the indexed dataset; every sample is a window of the export's sequences in
    the order GPTDataset shuffled them to, the packer's padding masked out of the loss (megatron maps pad
    tokens to id 0 in tokens and labels)."""
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from megatron.core.tokenizers import MegatronTokenizer

    export_run(packed, "megatron", tmp_path / "m")
    export_run(packed, "hf-tokenizer", tmp_path / "hf")
    tokenizer = MegatronTokenizer.from_pretrained(str(tmp_path / "hf"),
                                                  metadata_path={"library": "huggingface", "model_type": "gpt"})
    assert (tokenizer.eod, tokenizer.pad, tokenizer.vocab_size) == (0, 1, 700)
    seq_len = PARAMS["seq_len"]
    config = GPTDatasetConfig(random_seed=1, sequence_length=seq_len, blend=([str(tmp_path / "m" / "tokens")], None),
                              split="1,0,0", tokenizer=tokenizer, reset_position_ids=False,
                              reset_attention_mask=False, eod_mask_loss=False, path_to_cache=str(tmp_path / "cache"),
                              mid_level_dataset_surplus=0.005)
    train, _, _ = BlendedMegatronDatasetBuilder(GPTDataset, [64, None, None], lambda: True, config).build()
    sequences = IndexedDataset(str(tmp_path / "m" / "tokens"))
    stream = np.concatenate([sequences[int(d)] for d in train.document_index])
    padded = 0
    for i in range(len(train)):
        sample = train[i]
        start = int(train.shuffle_index[i]) * seq_len
        window = stream[start : start + seq_len + 1].astype(np.int64)
        pad = window == tokenizer.pad
        assert np.array_equal(sample["tokens"].numpy(), np.where(pad, 0, window)[:-1])
        assert np.array_equal(sample["labels"].numpy(), np.where(pad, 0, window)[1:])
        assert np.array_equal(sample["loss_mask"].numpy() == 0, pad[1:])
        padded += int(pad.any())
    assert padded  # pad_last left padded rows, and GPTDataset masked them
