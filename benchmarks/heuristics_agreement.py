"""Per-rule keep/drop agreement of ``quality.heuristics_v1`` + presets with datatrove 0.10's filters.

Every Gopher quality, Gopher repetition, C4 and FineWeb rule is decided on its own: datatrove's side computes each
signal with datatrove's own code (``split_into_words`` with its default spaCy tokenizer, ``find_duplicates``,
``find_top_duplicate``, ``find_all_duplicate``, ``split_into_sentences``) exactly as its filter does, and the
conjunction of the rules is checked against the filter's own decision on every document (so the per-rule oracle
is the filter). gristmill's side is each clause of the presets over the ``q_*`` columns.

Documents: the pages of the Common Crawl sample WARCs and the 181 crawled article pages, extracted the way
gristmill's ingest does (resiliparse, main content) and as whole pages (navigation included), and the Leipzig
sentences of 12 languages joined into documents. ``cjk_split`` off, as datatrove tokenizes every language with
its English tokenizer.

    GRISTMILL_SHARED_DATA=../shared/data python benchmarks/heuristics_agreement.py [--show 3] [--rule NAME]
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import re
from collections import Counter

import numpy as np
import pyarrow as pa

import gristmill.pipeline  # noqa: E402,F401  (import order: pipeline before gristmill.stages.filter)
import real_text  # noqa: E402
from gristmill.stages.filter import evaluate  # noqa: E402
from gristmill.stages.quality import presets  # noqa: E402
from gristmill.stages.quality.heuristics import QualityHeuristics  # noqa: E402

FAMILIES = {"gopher": presets.GOPHER, "gopher_repetition": presets.GOPHER_REPETITION, "c4": presets.C4,
            "fineweb": presets.FINEWEB}


def documents() -> list[dict]:
    docs = []
    for name in ("cc-main-2020-34-sample.warc.gz", "cc-main-2024-22-whirlwind.warc.gz"):
        for page in real_text.warc_pages(name):
            docs.append({"kind": "cc-main", "text": page["text"]})
            docs.append({"kind": "cc-page", "text": page["page"]})
    for page in real_text.html_pages():
        docs.append({"kind": "html-main", "text": page["main"]})
        docs.append({"kind": "html-page", "text": page["page"]})
    for doc in real_text.langid_documents():
        docs.append({"kind": f"langid-{doc['lang']}", "text": doc["text"]})
    return [d for d in docs if d["text"]]


def rule_name(clause: dict) -> str:
    op = next(k for k in clause if k != "col")
    return f"{clause['col']} {op} {clause[op]}"


def gristmill_rules(table: pa.Table) -> dict[str, np.ndarray]:
    """Keep decision of every preset clause, by family."""
    out = {}
    for family, preset in FAMILIES.items():
        for clause in preset["all"]:
            out[f"{family}: {rule_name(clause)}"] = evaluate(clause, table).to_numpy(zero_copy_only=False)
    return out


def datatrove_rules(text: str) -> tuple[dict[str, bool], dict[str, float]]:
    """datatrove's keep decision for every rule of the four filters on one document, and its signal values."""
    from datatrove.pipeline.filters.c4_filters import CITATION_REGEX, END_PUNCTUATION, POLICY_SUBSTRINGS
    from datatrove.pipeline.filters.gopher_quality_filter import STOP_WORDS
    from datatrove.pipeline.filters.gopher_repetition_filter import (find_all_duplicate, find_duplicates,
                                                                     find_top_duplicate, get_n_grams)
    from datatrove.utils.text import PUNCTUATION_SET, TERMINAL_PUNCTUATION, split_into_sentences, split_into_words

    keep, value = {}, {}
    words = split_into_words(text, "en")
    n = len(words)
    non_symbol = [w for w in words if any(ch not in PUNCTUATION_SET for ch in w)]
    lines = text.splitlines()
    value["q_word_count"] = len(non_symbol)
    value["q_mean_word_length"] = np.mean([len(w) for w in non_symbol]) if non_symbol else np.nan
    value["q_hash_word_ratio"] = text.count("#") / n if n else np.nan
    value["q_ellipsis_word_ratio"] = (text.count("...") + text.count("…")) / n if n else np.nan
    value["q_bullet_lines_frac"] = (sum(s.lstrip().startswith(("•", "-")) for s in lines) / len(lines)
                                    if lines else np.nan)
    value["q_ellipsis_lines_frac"] = (sum(s.rstrip().endswith(("...", "…")) for s in lines) / len(lines)
                                      if lines else np.nan)
    value["q_alpha_words_frac"] = sum(any(c.isalpha() for c in w) for w in words) / n if n else np.nan
    value["q_stop_word_count"] = len(set(STOP_WORDS) & set(words))

    paragraphs = re.split(r"\n{2,}", text.strip())
    dup, dup_chars = find_duplicates(paragraphs)
    value["q_dup_para_frac"] = dup / len(paragraphs)
    value["q_dup_para_char_frac"] = dup_chars / len(text) if text else np.nan
    split_lines = re.split("\n+", text)
    dup, dup_chars = find_duplicates(split_lines)
    value["q_dup_line_frac"] = dup / len(split_lines)
    value["q_dup_line_char_frac"] = dup_chars / len(text) if text else np.nan
    for size in presets_sizes("top"):
        grams = get_n_grams(words, size)
        value[f"q_top_{size}gram_char_frac"] = find_top_duplicate(grams) / len(text) if grams else 0.0
    for size in presets_sizes("dup"):
        value[f"q_dup_{size}gram_char_frac"] = find_all_duplicate(words, size) / len(text) if text else np.nan

    # C4, each document-level rule with the others off (the filter returns at the first lorem/curly line)
    lorem = curly = False
    sentences = 0
    for line in lines:
        line = line.strip()
        line_words = line.split()
        if any(len(w) > 1000 for w in line_words):
            continue
        line = CITATION_REGEX.sub("", line)
        if not line.endswith(END_PUNCTUATION) or line.endswith("..."):
            continue
        if len(line_words) < 3:
            continue
        lower = line.lower()
        lorem |= "lorem ipsum" in lower
        if "javascript" in lower:
            continue
        curly |= "{" in line
        if any(p in lower for p in POLICY_SUBSTRINGS):
            continue
        sentences += len(split_into_sentences(line, "en"))
    value["q_c4_lorem_ipsum"], value["q_c4_curly_bracket"], value["q_c4_sentence_count"] = lorem, curly, sentences

    fw_lines = [line for line in text.split("\n") if line.strip() != ""]
    if fw_lines:
        value["q_fw_line_punct_frac"] = sum(line.endswith(tuple(TERMINAL_PUNCTUATION)) for line in fw_lines) / len(
            fw_lines)
        value["q_fw_short_line_frac"] = sum(len(line) <= 30 for line in fw_lines) / len(fw_lines)
        value["q_fw_char_dup_frac"] = find_duplicates(fw_lines)[1] / len(text.replace("\n", ""))
        value["q_fw_newline_word_ratio"] = text.count("\n") / n if n else np.inf
    for family, preset in FAMILIES.items():
        for clause in preset["all"]:
            keep[f"{family}: {rule_name(clause)}"] = _passes(clause, value.get(clause["col"], np.nan))
    return keep, value


def presets_sizes(kind: str) -> list[int]:
    cols = [c["col"] for c in presets.GOPHER_REPETITION["all"] if c["col"].startswith(f"q_{kind}_")]
    return [int(re.search(r"(\d+)gram", c).group(1)) for c in cols if "gram" in c]


def _passes(clause: dict, v) -> bool:
    if isinstance(v, float) and np.isnan(v):
        return False  # null fails every comparison, as in gristmill's filter
    op = next(k for k in clause if k != "col")
    bound = clause[op]
    return {"ge": v >= bound, "le": v <= bound, "eq": v == bound}[op]


def datatrove_filters_keep(texts: list[str]) -> dict[str, list[bool]]:
    from datatrove.data import Document
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)

    filters = {"gopher": GopherQualityFilter(), "gopher_repetition": GopherRepetitionFilter(),
               "c4": C4QualityFilter(), "fineweb": FineWebQualityFilter()}
    return {family: [flt.filter(Document(text=t, id=str(i))) is True for i, t in enumerate(texts)]
            for family, flt in filters.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", type=int, default=0, help="print this many disagreeing documents per rule")
    parser.add_argument("--rule", default="", help="only show disagreements of rules containing this")
    args = parser.parse_args()

    docs = documents()
    texts = [d["text"] for d in docs]
    kinds = Counter(d["kind"].split("-")[0] for d in docs)
    table = QualityHeuristics({"cjk_split": False}).process(pa.table({"text": pa.array(texts, pa.large_string())}))
    table = table.table
    ours = gristmill_rules(table)
    oracle = [datatrove_rules(t) for t in texts]
    theirs = {rule: np.array([o[0][rule] for o in oracle]) for rule in ours}

    # the per-rule oracle is datatrove's filter: their conjunction equals the filter's decision on every document
    filter_keep = datatrove_filters_keep(texts)
    for family in FAMILIES:
        rules = [r for r in theirs if r.startswith(f"{family}:")]
        conj = np.logical_and.reduce([theirs[r] for r in rules])
        mismatch = np.flatnonzero(conj != np.array(filter_keep[family]))
        assert len(mismatch) == 0, (family, mismatch[:10])

    print(f"{len(texts)} documents ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}), cjk_split off\n")
    print("| rule (keep if) | gristmill drops | datatrove drops | agreement | disagreements |")
    print("|---|---:|---:|---:|---:|")
    for rule in ours:
        differ = np.flatnonzero(ours[rule] != theirs[rule])
        print(f"| `{rule}` | {int((~ours[rule]).sum())} | {int((~theirs[rule]).sum())} | "
              f"{100 * (1 - len(differ) / len(texts)):.2f}% | {len(differ)} |")
    for family in FAMILIES:
        rules = [r for r in ours if r.startswith(f"{family}:")]
        a = np.logical_and.reduce([ours[r] for r in rules])
        b = np.array(filter_keep[family])
        print(f"| **{family} (whole filter)** | {int((~a).sum())} | {int((~b).sum())} | "
              f"{100 * np.mean(a == b):.2f}% | {int((a != b).sum())} |")

    print("\nsignal differences gristmill - datatrove (documents where both are defined):")
    for col in sorted({r.split(": ")[1].split(" ")[0] for r in ours}):
        gm = np.array([np.nan if v is None else float(v) for v in table[col].to_pylist()])
        dt = np.array([float(o[1].get(col, np.nan)) for o in oracle])
        ok = ~np.isnan(gm) & ~np.isnan(dt) & ~np.isinf(dt)
        diff = gm[ok] - dt[ok]
        if len(diff) and np.any(diff != 0):
            print(f"  {col}: differ on {int(np.sum(np.abs(diff) > 1e-9))} docs, median {np.median(diff):+.4f}, "
                  f"p10 {np.percentile(diff, 10):+.4f}, p90 {np.percentile(diff, 90):+.4f}, "
                  f"min {diff.min():+.4f}, max {diff.max():+.4f}")
    if args.show:
        for rule in ours:
            if args.rule not in rule:
                continue
            col = rule.split(": ")[1].split(" ")[0]
            for i in np.flatnonzero(ours[rule] != theirs[rule])[:args.show]:
                print(f"\n[{rule}] doc {i} ({docs[i]['kind']}): gm={table[col][i].as_py()} "
                      f"dt={oracle[i][1].get(col)} text={texts[i][:300]!r}")


if __name__ == "__main__":
    main()
