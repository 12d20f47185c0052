"""What every clean stage promises (stages/clean/__init__.py): registered by name, rows and columns kept,
row accounting, deterministic, chunked input, empty input, and the same results on a real local Ray."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from gristmill.pipeline.registry import get_stage
from gristmill.stages.base import PART_COLUMN, StreamingStage
from gristmill.stages.clean.boilerplate import Boilerplate
from gristmill.stages.clean.normalize import Normalize
from gristmill.stages.clean.pii import Pii

from .conftest import doc_table, lines_of

NAMES = {"clean.normalize_v1": Normalize, "clean.boilerplate_v1": Boilerplate, "clean.pii_v1": Pii}


def mixed_texts(real_texts) -> list[str | None]:
    """Real documents of several languages and code, with mojibake, PII, boilerplate and empty ones."""
    texts = [
        "\n".join(real_texts["en"][i : i + 8]) + "\nHome\nPlease enable JavaScript.\nmail a@example.com."
        for i in range(0, 80, 8)
    ]
    texts += ["\n".join(real_texts[lang][i : i + 8]) for lang in ("zh", "ja", "hi") for i in range(0, 40, 8)]
    texts += ["\r\n".join(lines_of("mojibake.txt")), "\n".join(lines_of("pii.txt")), "", "   ", None,
              "Home\nAbout", "\n".join(lines_of("code_colorsys.py.txt"))]
    return texts


@pytest.mark.parametrize("name", sorted(NAMES))
def test_registered_under_versioned_name(name):
    assert get_stage(name) is NAMES[name]
    assert issubclass(NAMES[name], StreamingStage)


@pytest.mark.parametrize("cls", [Normalize, Boilerplate, Pii], ids=lambda c: c.name)
def test_rows_columns_and_accounting(cls, real_texts):
    texts = mixed_texts(real_texts)
    table = doc_table(texts, sources=["common_crawl", "github"] * (len(texts) // 2) + ["c4"] * (len(texts) % 2))
    stage = cls()
    stage.setup()
    out = stage.process(table)

    assert out.table.schema == table.schema
    assert out.table.num_rows == table.num_rows
    for column in table.column_names:
        if column != "text":
            assert out.table.column(column).equals(table.column(column)), column
    # Accounting: one reason (or null = keep) per input row; the real documents are kept, the empty ones
    # rejected by the stages that judge emptiness, and nothing is rejected by the redaction stage.
    reasons = [None] * len(texts) if out.reject_reason is None else out.reject_reason.to_pylist()
    assert len(reasons) == table.num_rows
    assert reasons[:25] == [None] * 25
    empty_rows = [i for i, t in enumerate(texts) if t is None or not t.strip()]
    if cls is Pii:
        assert reasons == [None] * len(texts)
    else:
        assert all(reasons[i] is not None and reasons[i].startswith(cls.name.split(".")[1].removesuffix("_v1"))
                   for i in empty_rows)
    # The stage did something on this input (a stage that changes nothing would pass everything above).
    assert out.table.column("text").to_pylist() != texts


@pytest.mark.parametrize("cls", [Normalize, Boilerplate, Pii], ids=lambda c: c.name)
def test_deterministic_and_chunking_independent(cls, real_texts):
    texts = mixed_texts(real_texts)
    table = doc_table(texts)
    first, second = cls().process(table), cls().process(table)
    assert first.table.equals(second.table)
    # The same rows as three chunks (as Ray Data hands them over) give the same result.
    chunked = pa.concat_tables([table.slice(0, 5), table.slice(5, 10), table.slice(15)])
    assert chunked.column("text").num_chunks == 3
    third = cls().process(chunked)
    assert third.table.column("text").to_pylist() == first.table.column("text").to_pylist()
    reasons = lambda o: None if o.reject_reason is None else o.reject_reason.to_pylist()  # noqa: E731
    assert reasons(first) == reasons(second) == reasons(third)


@pytest.mark.parametrize("cls", [Normalize, Boilerplate, Pii], ids=lambda c: c.name)
def test_empty_in_empty_out(cls):
    empty = doc_table(["x"]).slice(0, 0)
    out = cls().process(empty)
    assert out.table.num_rows == 0 and out.table.schema == empty.schema
    assert out.reject_reason is None or len(out.reject_reason) == 0


@pytest.mark.parametrize("cls", [Normalize, Boilerplate, Pii], ids=lambda c: c.name)
def test_a_string_text_column_keeps_its_type(cls):
    table = doc_table(["Some text here, a@example.com.", "cafÃ©  au lait."])
    table = table.set_column(2, pa.field("text", pa.string(), nullable=False), table.column("text").cast(pa.string()))
    out = cls().process(table)
    assert out.table.schema == table.schema


@pytest.mark.parametrize("cls", [Normalize, Boilerplate, Pii], ids=lambda c: c.name)
def test_stages_pickle_with_their_params(cls):
    stage = cls({"sources": ["c4"]})
    clone = pickle.loads(pickle.dumps(stage))
    assert clone.params == stage.params


@pytest.mark.ray
def test_same_output_on_ray_data(ray_cluster, real_texts):
    """The three stages in Ray Data map_batches (pyarrow batches, worker processes) match the local run."""
    import ray

    texts = mixed_texts(real_texts)
    table = doc_table(texts)
    stages = [Normalize(), Boilerplate(), Pii()]

    def local(batch: pa.Table) -> pa.Table:
        for stage in stages:
            out = stage.process(batch)
            batch = out.table if out.reject_reason is None else out.table.filter(pc.is_null(out.reject_reason))
        return batch

    expected = local(table)
    ds = ray.data.from_arrow(table).map_batches(local, batch_format="pyarrow", batch_size=7)
    got = pa.concat_tables(ray.get(ds.to_arrow_refs())).sort_by("doc_id")
    assert got.column("text").to_pylist() == expected.sort_by("doc_id").column("text").to_pylist()
    assert got.column(PART_COLUMN).to_pylist() == expected.sort_by("doc_id").column(PART_COLUMN).to_pylist()
