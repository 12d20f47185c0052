"""A demo-like pipeline over the shipped data, shared by the pipeline tests."""

from __future__ import annotations

from pathlib import Path

# {data} is replaced by tests/data.
DEMO = """\
name: demo-test
seed: 3
inputs:
  - source: common_crawl
    format: warc
    paths: ["{data}/warc/cc-main-2020-34-sample.warc.gz", "{data}/warc/truncated-record.warc.gz"]
  - source: github
    format: text
    paths: ["{data}/python-stdlib/*.py"]
    options: {{files_per_unit: 4}}
steps:
  - stage: clean.normalize_v1
  - stage: clean.boilerplate_v1
    params: {{sources: [common_crawl]}}
  - stage: clean.pii_v1
  - filter: {{all: [{{col: text, ne: ""}}]}}
output:
  rejects: true
execution:
  executor: local
"""



def make_plan(data_dir: Path, text: str = DEMO):
    from gristmill.pipeline import build_plan, parse_pipeline

    return build_plan(parse_pipeline(text.format(data=data_dir), "demo.yaml"), data_dir)


# DEMO through tokenizer training, tokenization and packing: three segments, shards and a manifest.
PACKED_STEPS = """\
  - stage: tokenizer.train_bbpe_v1
    params: {{vocab_size: 400, seed: 0}}
  - stage: tokenize.bbpe_v1
  - stage: mixture.pack_v1
    params: {{ratios: {{common_crawl: 0.6, github: 0.4}}, default_max_epochs: 2.0, seq_len: 64, rows_per_shard: 16}}
"""
PACKED = DEMO.replace("output:\n", PACKED_STEPS + "output:\n")
