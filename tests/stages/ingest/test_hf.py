"""The ``hf`` reader over folders written by the real ``datasets`` library (``save_to_disk``) and hub-style folders."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gristmill.pipeline import LocalExecutor, RunDir, build_plan, parse_pipeline, run_plan
from gristmill.pipeline.spec import SpecError
from gristmill.stages.ingest import reasons
from gristmill.stages.ingest.base import InputFileError, Limits
from gristmill.stages.ingest.hf import HfDatasetError, HfReader
from gristmill.stages.ingest.warc import WarcReader

from .conftest import CC_SAMPLE, documents, read_rows

datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def pages() -> list[dict]:
    """Real page texts (the Common Crawl sample, extracted): 16 documents."""
    return documents(read_rows(WarcReader, [CC_SAMPLE]))


def _records(pages):
    return {"content": [p["text"] for p in pages], "page_id": [f"cc-{i}" for i in range(len(pages))],
            "link": [p["url"] for p in pages]}


def _reader(split=None, batch_rows=5, **options) -> HfReader:
    opts = {"text_field": "content", **options}
    return HfReader(HfReader.Params(split=split, **opts), Limits(batch_rows=batch_rows))


def _read(reader: HfReader, folder) -> list[dict]:
    files = reader.expand_directory(str(folder))
    rows = []
    for unit in reader.units(files, 0):
        for table in reader.read(unit):
            assert table.num_rows <= reader.limits.batch_rows
            rows.extend(table.to_pylist())
    return rows


def test_save_to_disk_shards_read_in_order_with_ids_and_urls(tmp_path, pages):
    # Several shards and small writer batches: the reader re-batches Arrow streams to the batch limits.
    datasets.Dataset.from_dict(_records(pages)).save_to_disk(str(tmp_path / "ds"), num_shards=3)
    reader = _reader(id_field="page_id", url_field="link")
    files = reader.expand_directory(str(tmp_path / "ds"))
    assert [f.rsplit("/", 1)[1] for f in files] == [f"data-0000{i}-of-00003.arrow" for i in range(3)]
    rows = _read(reader, tmp_path / "ds")
    assert [r["text"] for r in rows] == [p["text"] for p in pages]
    assert [r["origin"] for r in rows] == [f"cc-{i}" for i in range(len(pages))]
    assert [r["url"] for r in rows] == [p["url"] for p in pages]
    assert all(r["reject_reason"] is None for r in rows)


def test_a_null_text_is_a_rejected_row_and_the_default_origin_is_file_and_row(tmp_path, pages):
    records = _records(pages[:4])
    records["content"][1] = None
    datasets.Dataset.from_dict(records).save_to_disk(str(tmp_path / "ds"))
    rows = _read(_reader(), tmp_path / "ds")
    assert [r["reject_reason"] for r in rows] == [None, reasons.MISSING_TEXT_FIELD, None, None]
    shard = tmp_path / "ds" / "data-00000-of-00001.arrow"
    assert [r["origin"] for r in rows] == [f"{shard}:{i}" for i in range(4)]


def test_dataset_dict_split_is_chosen_by_the_split_option(tmp_path, pages):
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict(_records(pages[:10])),
                               "test": datasets.Dataset.from_dict(_records(pages[10:]))})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert [r["text"] for r in _read(_reader("test"), tmp_path / "dd")] == [p["text"] for p in pages[10:]]
    with pytest.raises(HfDatasetError, match=r"splits \['train', 'test'\]: choose one with options.split"):
        _reader().expand_directory(str(tmp_path / "dd"))
    with pytest.raises(HfDatasetError, match=r"no split 'dev'; the dataset's splits are \['train', 'test'\]"):
        _reader("dev").expand_directory(str(tmp_path / "dd"))


def test_hub_folder_of_parquet_shards_per_split(tmp_path, pages):
    data = tmp_path / "hub" / "data"
    data.mkdir(parents=True)
    table = pa.table(_records(pages))
    pq.write_table(table.slice(0, 7), data / "train-00000-of-00002.parquet")
    pq.write_table(table.slice(7, 6), data / "train-00001-of-00002.parquet")
    pq.write_table(table.slice(13), data / "test-00000-of-00001.parquet")
    (tmp_path / "hub" / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n")
    rows = _read(_reader("train"), tmp_path / "hub")
    assert [r["text"] for r in rows] == [p["text"] for p in pages[:13]]
    with pytest.raises(HfDatasetError, match=r"files of splits \['test', 'train'\]"):
        _reader().expand_directory(str(tmp_path / "hub"))


def test_hub_folder_of_jsonl_with_a_configurable_text_field(tmp_path, pages):
    folder = tmp_path / "hub" / "train"
    folder.mkdir(parents=True)
    with open(folder / "part-0.jsonl", "w") as fh:
        for i, p in enumerate(pages[:5]):
            fh.write(json.dumps({"body": p["text"], "uid": f"u{i}"}) + "\n")
    rows = _read(_reader(text_field="body", id_field="uid"), tmp_path / "hub")
    assert [r["text"] for r in rows] == [p["text"] for p in pages[:5]]
    assert [r["origin"] for r in rows] == [f"u{i}" for i in range(5)]


def test_missing_text_field_names_the_file_and_the_columns(tmp_path, pages):
    datasets.Dataset.from_dict(_records(pages[:2])).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(InputFileError, match=r"data-00000-of-00001.arrow: no column 'text'.*columns are"):
        _read(_reader(text_field="text"), tmp_path / "ds")


PIPELINE = """\
name: hf-test
inputs:
  - source: wikipedia
    format: hf
    paths: [{folder}]
    options: {{text_field: content, split: {split}}}
execution: {{executor: local}}
"""


def test_a_pipeline_input_names_the_folder(tmp_path, pages):
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict(_records(pages)),
                               "validation": datasets.Dataset.from_dict(_records(pages[:2]))})
    dd.save_to_disk(str(tmp_path / "dd"))
    plan = build_plan(parse_pipeline(PIPELINE.format(folder="dd", split="train"), "p.yaml"), tmp_path)
    assert [f["path"] for f in plan.input_files] == [str(tmp_path / "dd" / "train" / "data-00000-of-00001.arrow")]
    result = run_plan(plan, RunDir(tmp_path / "run"), LocalExecutor(), log=lambda m: None)
    (segment,) = result.stats
    table = pq.read_table(RunDir(tmp_path / "run").segment_dir(segment.segment))
    assert table["text"].to_pylist() == [p["text"] for p in pages]
    assert set(table["source"].to_pylist()) == {"wikipedia"}
    with pytest.raises(SpecError, match=r"inputs\[0\].paths\[0\]: .*no split 'dev'"):
        build_plan(parse_pipeline(PIPELINE.format(folder="dd", split="dev"), "p.yaml"), tmp_path)


def test_a_saved_dataset_dict_on_an_object_store_reads_as_on_disk(tmp_path, pages, s3_query):
    from gristmill.core import storage

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict(_records(pages)),
                               "test": datasets.Dataset.from_dict(_records(pages[:3]))})
    dd.save_to_disk(str(tmp_path / "dd"), num_shards={"train": 2, "test": 1})
    for f in (tmp_path / "dd").rglob("*"):
        if f.is_file():
            rel = f.relative_to(tmp_path / "dd").as_posix()
            storage.resolve(f"s3://gristmill-run/dd/{rel}?{s3_query}").write_bytes(f.read_bytes())
    remote = _reader("train", id_field="page_id")
    files = remote.expand_directory(f"s3://gristmill-run/dd?{s3_query}")
    assert files == [f"s3://gristmill-run/dd/train/data-0000{i}-of-00002.arrow?{s3_query}" for i in range(2)]
    rows = _read(remote, f"s3://gristmill-run/dd?{s3_query}")
    local = _read(_reader("train", id_field="page_id"), tmp_path / "dd")
    assert [(r["text"], r["origin"]) for r in rows] == [(r["text"], r["origin"]) for r in local]
    assert [r["text"] for r in rows] == [p["text"] for p in pages]
    plan = build_plan(parse_pipeline(PIPELINE.format(folder=f"'s3://gristmill-run/dd?{s3_query}'", split="test"),
                                     "p.yaml"), tmp_path)
    assert [f["path"] for f in plan.input_files] == [f"s3://gristmill-run/dd/test/data-00000-of-00001.arrow?{s3_query}"]
