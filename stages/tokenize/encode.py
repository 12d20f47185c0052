"""``tokenize.bbpe_v1``: encode each document's text with the run's BBPE tokenizer.

Adds ``tokens`` (list<int32>) and ``n_tokens`` (int32: the list's own offset type, and no document of the
16 MiB ingest record limit comes near 2**31 tokens). Appends no separator: the packer joins documents with
``<|endoftext|>``. Special-token strings that occur *inside* a document (``"<|endoftext|>"`` quoted in a web
page) are encoded as ordinary text by default (``parse_special_tokens: false``), so a document can never
inject a separator or padding into the packed stream; decoding gives the literal string back.

Two engines give the same ids: ``tokenizers`` (the library the tokenizer was trained with) and ``tiktoken``
(6-8x less CPU per byte, benchmarks/tokenize_engines.py). tiktoken ranks a pair by the id of the token it
would form, where ``tokenizers`` looks the pair up in the merge list; setup() proves the two agree for the
given tokenizer.json (see ``tiktoken_incompatibilities``): gristmill's own tokenizers and GPT-2-style
byte-level ones pass. ``engine: auto`` (the default) takes tiktoken when that proof holds and tiktoken is
installed, ``tokenizers`` otherwise; ``engine: tiktoken`` refuses a tokenizer that fails the proof. The stage
counts the rows each engine encoded (``engine_tiktoken`` / ``engine_tokenizers`` in the step's counters).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from gristmill.core.storage import Location, resolve
from gristmill.stages.base import Resources, StageOutput, StageParams, StreamingStage, require
from gristmill.stages.tokenize.bbpe import SPLIT_REGEX, SUPERWORD_REGEX, TOKENIZER_FILE

TOKENS = "tokens"
N_TOKENS = "n_tokens"
TOKENS_TYPE = pa.list_(pa.int32())


class TokenizeParams(StageParams):
    # tokenizer.json to load; None = RUN_DIR/tokenizer/tokenizer.json written by tokenizer.train_bbpe_v1.
    path: str | None = None
    # Text bytes per encode_batch call: bounds the memory held in Encoding objects at once.
    batch_bytes: int = Field(8 * 1024 * 1024, gt=0)
    # False: special-token strings inside a document are plain text (see the module docstring).
    parse_special_tokens: bool = False
    # "auto": tiktoken when it is installed and proven to give this tokenizer's ids, else tokenizers.
    # "tiktoken": the same ids from tiktoken (pip install 'gristmill[tiktoken]'); setup() refuses a tokenizer
    # whose ids tiktoken cannot reproduce exactly, naming what differs. "tokenizers": always HF tokenizers.
    engine: Literal["auto", "tokenizers", "tiktoken"] = "auto"


def _limit_native_threads(cpus: int | None) -> None:
    """Keep the tokenizer's thread pool to the CPUs this worker was given (None: not limited, all cores).

    Without this every worker starts one Rust thread per core of the machine and N workers oversubscribe the
    node N times. TOKENIZERS_PARALLELISM is read on every call; RAYON_NUM_THREADS only before the pool's
    first use, which is why this runs in setup().
    """
    if cpus is None:
        return
    if cpus <= 1:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("RAYON_NUM_THREADS", str(max(1, cpus)))


def encode_threads() -> int:
    """Threads the tiktoken engine encodes with: the same budget ``tokenizers`` would use.

    Read after ``_limit_native_threads()``, so in a worker with a CPU budget this is that budget; elsewhere
    RAYON_NUM_THREADS when set, else every core, and 1 when TOKENIZERS_PARALLELISM is off.
    """
    if os.environ.get("TOKENIZERS_PARALLELISM", "").lower() in ("0", "false", "off", "no"):
        return 1
    try:
        threads = int(os.environ.get("RAYON_NUM_THREADS", ""))
    except ValueError:
        threads = os.cpu_count() or 1
    return max(1, threads)


def _list_array(ids: list[np.ndarray]) -> pa.ListArray:
    """One list<int32> array from per-document id arrays (int32, or uint32 ids below 2**31)."""
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    offsets = np.zeros(len(ids) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(ids).astype(np.int32, copy=False) if ids else np.zeros(0, dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.int32()))


def encode_ids(tokenizer: Any, texts: list[str]) -> pa.ListArray:
    """Token ids of ``texts`` as one list<int32> array, from a single native ``encode_batch`` call.

    The ids are copied once per document into numpy and concatenated; offsets come from a cumulative sum
    (measured: about 2x faster than ``pa.array`` over the id lists, and ~2% of the encode time).
    """
    encodings = tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    return _list_array([np.asarray(e.ids, dtype=np.int32) for e in encodings])


def batch_bounds(text_bytes: np.ndarray, batch_bytes: int) -> list[tuple[int, int]]:
    """Row ranges of about ``batch_bytes`` text each (a larger document gets a range of its own)."""
    ends = np.cumsum(text_bytes, dtype=np.int64)
    bounds, start = [], 0
    while start < len(text_bytes):
        base = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, base + batch_bytes, side="right"))
        stop = max(stop, start + 1)
        bounds.append((start, stop))
        start = stop
    return bounds


# --- The tiktoken engine ---------------------------------------------------------------------------------
#
# Why tiktoken's ids equal the merge list's, for a tokenizer that passes ``tiktoken_incompatibilities``:
# tiktoken repeatedly joins the adjacent pair whose joined bytes have the lowest id; ``tokenizers`` joins the
# adjacent pair with the lowest merge rank. Merge results are unique and their ids rise in merge order, so
# the two orders agree on every pair that is a merge. A pair that is not a merge but joins into a token t
# (``t`` made by merge k from (x, y), met as (x', y')) can only be met, with every merge before k used up,
# inside a span that holds exactly ``t``'s bytes; BPE of a span whose edges no merge has crossed depends on
# the span alone, and the merges split ``t``'s own bytes into (x, y) at that point (every token encodes to
# itself, checked below), so (x', y') = (x, y). tiktoken's shortcut (a piece that is a whole token is
# emitted as is) agrees for the same reason. Pieces: the split regex is the repository's ``SPLIT_REGEX`` or
# ``SUPERWORD_REGEX`` or GPT-2's (as tiktoken's own GPT-2 encodings write it), run by fancy-regex instead of
# Oniguruma; tests/stages/tokenize/test_tiktoken_engine.py compares the two on every BMP code point for each;
# the Digits step is a no-op after the repository's regexes (``\p{N}`` already isolates each digit) and
# refused after GPT-2's.

TIKTOKEN_EXTRA = "tiktoken"
# The regex of the ByteLevel pre-tokenizer (use_regex: true): GPT-2's, which tiktoken's "gpt2" encoding runs too.
GPT2_SPLIT_REGEX = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# tiktoken_ext.openai_public.r50k_pat_str: GPT-2's regex as tiktoken runs it for its "gpt2"/"r50k_base" encodings.
GPT2_TIKTOKEN_REGEX = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
# Stands in when a tokenizer has no special tokens: tiktoken's encode() with an empty special-token set
# scans for an empty pattern at every byte (measured 1.7x slower). Never emitted: none is ever allowed.
_PLACEHOLDER_SPECIAL = "<|gristmill_no_special_tokens|>"
_NO_SPECIALS: frozenset[str] = frozenset()


class TiktokenIncompatible(ValueError):
    """The tokenizer's ids cannot be reproduced exactly by tiktoken."""


def byte_level_alphabet() -> dict[str, int]:
    """The ByteLevel pre-tokenizer's 256 characters, each mapped to the byte it stands for (GPT-2's table:
    printable Latin-1 bytes stand for themselves, the other 68 bytes for U+0100.. in byte order)."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    others = sorted(set(range(256)) - set(printable))
    return {**{chr(b): b for b in printable}, **{chr(0x100 + i): b for i, b in enumerate(others)}}


def _kind(step: Any) -> str:
    return step.get("type", "?") if isinstance(step, dict) else repr(step)


def _pre_tokenizer_pattern(pre: Any) -> tuple[list[str], str | None]:
    """(differences, the split regex tiktoken must run) for the pre-tokenizer of tokenizer.json.

    Two shapes split text exactly as tiktoken can: gristmill's own (Sequence[Split(SPLIT_REGEX or
    SUPERWORD_REGEX), (Digits,) ByteLevel without its regex]) and GPT-2's (ByteLevel with its built-in regex, alone or as the only step of
    a Sequence, or that regex as an explicit Split before a regex-free ByteLevel).
    """
    steps = pre.get("pretokenizers", []) if _kind(pre) == "Sequence" else [pre]
    kinds = [_kind(s) for s in steps]
    if kinds == ["ByteLevel"]:
        byte_level = steps[0]
        if byte_level.get("add_prefix_space"):
            return ["ByteLevel adds a prefix space"], None
        if not byte_level.get("use_regex", True):
            return ["ByteLevel splits nothing (use_regex false and no Split before it)"], None
        return [], GPT2_SPLIT_REGEX
    if kinds not in (["Split", "ByteLevel"], ["Split", "Digits", "ByteLevel"]):
        shape = kinds if _kind(pre) == "Sequence" else _kind(pre)
        return [f"pre_tokenizer is {shape}, not ByteLevel or Sequence[Split, (Digits,) ByteLevel]"], None
    split, byte_level = steps[0], steps[-1]
    pattern = (split.get("pattern") or {}).get("Regex")
    found = []
    if pattern not in (SPLIT_REGEX, SUPERWORD_REGEX, GPT2_SPLIT_REGEX):
        found.append(
            "the Split pattern is neither the repository's SPLIT_REGEX or SUPERWORD_REGEX nor GPT-2's (tiktoken "
            "runs it with another regex engine, and drops text a pattern leaves unmatched)"
        )
    if split.get("behavior") != "Isolated" or split.get("invert"):
        found.append(f"Split has behavior {split.get('behavior')!r}, invert {split.get('invert')!r}")
    if len(steps) == 3 and (steps[1].get("individual_digits") is not True
                            or pattern not in (SPLIT_REGEX, SUPERWORD_REGEX)):
        found.append("a Digits step other than individual digits after SPLIT_REGEX or SUPERWORD_REGEX")
    if byte_level.get("add_prefix_space") or byte_level.get("use_regex", True):
        found.append("ByteLevel adds a prefix space or splits with its own regex")
    return found, pattern


def _pipeline_differences(spec: dict, parse_special_tokens: bool) -> tuple[list[str], str | None]:
    """(what in tokenizer.json, outside the vocabulary, tiktoken does not do the same way; the split regex)."""
    found = []
    if parse_special_tokens:
        found.append("parse_special_tokens is true (the tiktoken engine encodes special-token strings as text)")
    for key in ("normalizer", "truncation", "padding"):
        if spec.get(key) is not None:
            found.append(f"it has a {key} ({_kind(spec[key])})")
    if spec.get("post_processor") is not None and _kind(spec["post_processor"]) != "ByteLevel":
        found.append(f"it has a post_processor ({_kind(spec['post_processor'])})")
    plain = [t.get("content") for t in spec.get("added_tokens", []) if not t.get("special")]
    if plain:
        found.append(f"added tokens that are not special ({plain[:3]}) are split out of the text")
    pre_found, pattern = _pre_tokenizer_pattern(spec.get("pre_tokenizer"))
    return found + pre_found, pattern


def _model_differences(model: dict) -> list[str]:
    if model.get("type") != "BPE":
        return [f"the model is {model.get('type')}, not BPE"]
    found = [f"model.{key} is {model[key]!r}" for key in ("dropout", "unk_token", "continuing_subword_prefix",
                                                          "end_of_word_suffix") if model.get(key) not in (None, "")]
    found += [f"model.{key} is true" for key in ("byte_fallback", "ignore_merges") if model.get(key)]
    return found


def _merge_pairs(merges: list) -> list[tuple[str, str]]:
    # Written as [left, right] since tokenizers 0.20, as "left right" before (byte-level tokens hold no space).
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


def _vocabulary_differences(model: dict, specials: set[str]) -> tuple[list[str], dict[str, int]]:
    """(differences, merge results -> id): the merge list must be one tiktoken's id ranking reproduces."""
    vocab, alphabet = model["vocab"], byte_level_alphabet()
    missing = [c for c in alphabet if c not in vocab]
    if missing:
        return [f"{len(missing)} of the 256 byte tokens are missing from the vocabulary"], {}
    created: dict[str, int] = {}
    previous = -1
    for rank, pair in enumerate(_merge_pairs(model["merges"])):
        if len(pair) != 2:
            return [f"merge {rank} is not a pair: {pair!r}"], {}
        unknown = [p for p in pair if p not in alphabet and p not in created]
        token = pair[0] + pair[1]
        token_id = vocab.get(token)
        if unknown:
            return [f"merge {rank} {pair} uses {unknown[0]!r} before any merge creates it"], {}
        if token in created:
            return [f"two merges create {token!r} (rank order then differs from id order)"], {}
        if token_id is None:
            return [f"merge {rank} {pair} creates {token!r}, which is not in the vocabulary"], {}
        if token_id <= previous:
            order = f"merge {rank} {pair} creates id {token_id}, not above the previous merge's id {previous}"
            return [f"{order}: merge order and id order differ"], {}
        created[token], previous = token_id, token_id
    extra = sorted(set(vocab) - alphabet.keys() - created.keys() - specials)
    if extra:
        return [f"{len(extra)} vocabulary tokens (e.g. {extra[0]!r}) are neither bytes, merge results nor special"], {}
    clash = sorted(specials & (alphabet.keys() | created.keys()))
    if clash:
        return [f"special token {clash[0]!r} is also a byte or merge result"], {}
    if max(vocab.values()) >= 2**31:
        return ["token ids do not fit int32"], {}
    return [], created


def _self_encoding_differences(tokenizer: Any, created: dict[str, int]) -> list[str]:
    """Every merge result must be what the merges make of its own bytes (~75 ms for 32k tokens)."""
    model = tokenizer.model
    for token, token_id in created.items():
        ids = [t.id for t in model.tokenize(token)]
        if ids != [token_id]:
            return [f"the merges encode the bytes of token {token_id} ({token!r}) as {ids}, tiktoken as [{token_id}]"]
    return []


def tiktoken_incompatibilities(spec: dict, tokenizer: Any, parse_special_tokens: bool) -> list[str]:
    """Why tiktoken would not give exactly ``tokenizer``'s ids for the tokenizer.json ``spec`` (empty: it does)."""
    found, _ = _pipeline_differences(spec, parse_special_tokens)
    found += _model_differences(spec.get("model", {}))
    if found:
        return found
    specials = {t["content"] for t in spec.get("added_tokens", [])}
    found, created = _vocabulary_differences(spec["model"], specials)
    return found or _self_encoding_differences(tokenizer, created)


def split_pattern(spec: dict) -> str:
    """The split regex tiktoken runs for tokenizer.json ``spec``: its own (SPLIT_REGEX or SUPERWORD_REGEX), or
    for GPT-2's regex the form tiktoken's own GPT-2 encodings run (possessive, the same pieces, faster)."""
    pattern = _pre_tokenizer_pattern(spec.get("pre_tokenizer"))[1] or SPLIT_REGEX
    return GPT2_TIKTOKEN_REGEX if pattern == GPT2_SPLIT_REGEX else pattern


def tiktoken_encoding(spec: dict, name: str) -> Any:
    """A ``tiktoken.Encoding`` with the vocabulary of tokenizer.json ``spec`` (its ids as ranks)."""
    tiktoken = require("tiktoken", TIKTOKEN_EXTRA)
    alphabet = byte_level_alphabet()
    specials = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    ranks = {
        bytes(alphabet[c] for c in token): token_id
        for token, token_id in spec["model"]["vocab"].items()
        if token not in specials
    }
    specials = specials or {_PLACEHOLDER_SPECIAL: max(ranks.values()) + 1}
    return tiktoken.Encoding(name, pat_str=split_pattern(spec), mergeable_ranks=ranks, special_tokens=specials)


class TiktokenEngine:
    """Encodes documents with tiktoken, on ``threads`` threads (tiktoken releases the GIL while encoding)."""

    def __init__(self, encoding: Any, fallback: Any, threads: int):
        self.encoding = encoding
        self.fallback = fallback  # the ``tokenizers`` Tokenizer, for what tiktoken's regex engine gives up on
        self.threads = threads

    def encode_one(self, text: str) -> np.ndarray:
        try:
            # encode_to_numpy: the ids as a buffer, no Python int per token (1.2x faster than encode_ordinary).
            # No special token allowed: special-token strings are plain text, as with encode_special_tokens.
            return self.encoding.encode_to_numpy(text, allowed_special=_NO_SPECIALS, disallowed_special=())
        except ValueError:
            # fancy-regex's backtracking limit, hit by a run of ~1M whitespace characters (`\s+(?!\S)`);
            # Oniguruma has none. encode_ordinary would panic here instead, which is why it is not used.
            return np.asarray(self.fallback.encode(text, add_special_tokens=False).ids, dtype=np.uint32)

    def encode_all(self, texts: list[str]) -> list[np.ndarray]:
        return [self.encode_one(text) for text in texts]

    def __call__(self, texts: list[str]) -> pa.ListArray:
        if self.threads <= 1 or len(texts) < 2:  # no thread started
            return _list_array(self.encode_all(texts))
        # A few slices per thread: one task per slice, so load stays balanced without a task per document.
        cuts = np.linspace(0, len(texts), min(len(texts), 4 * self.threads) + 1).astype(np.int64)
        with ThreadPoolExecutor(self.threads) as pool:
            parts = pool.map(self.encode_all, [texts[a:b] for a, b in pairwise(cuts)])
            return _list_array([ids for part in parts for ids in part])


def load_tiktoken_engine(path: str | Location, tokenizer: Any, parse_special_tokens: bool,
                         spec: dict | None = None) -> TiktokenEngine:
    """The tiktoken engine for tokenizer.json at ``path`` (already parsed: ``spec``), or ``TiktokenIncompatible``
    saying what differs."""
    location = resolve(path)
    spec = location.read_json() if spec is None else spec
    found = tiktoken_incompatibilities(spec, tokenizer, parse_special_tokens)
    if found:
        raise TiktokenIncompatible(
            f"tokenize.bbpe_v1: engine 'tiktoken' cannot reproduce the ids of {path}: {'; '.join(found)}. "
            "Use engine: tokenizers for this tokenizer."
        )
    encoding = tiktoken_encoding(spec, name=f"gristmill:{location.name}")
    return TiktokenEngine(encoding, tokenizer, encode_threads())


class TokenizeBbpeV1(StreamingStage):
    """Encode ``text`` into ``tokens`` (list<int32>) and ``n_tokens`` (int32) with a BBPE tokenizer."""

    name: ClassVar[str] = "tokenize.bbpe_v1"
    Params: ClassVar[type[TokenizeParams]] = TokenizeParams
    resources: ClassVar[Resources] = Resources(num_cpus=1, actor=True)
    output_columns: ClassVar[dict[str, pa.DataType]] = {TOKENS: TOKENS_TYPE, N_TOKENS: pa.int32()}

    tokenizer: Any = None
    # texts -> list<int32> ids, with the engine setup() chose; its name ("tiktoken" or "tokenizers").
    encode: Callable[[list[str]], pa.ListArray] | None = None
    engine: str | None = None

    @classmethod
    def contract_params(cls, tmp_path) -> dict:
        """A small tokenizer trained on a few sentences, for running the stage without a run directory."""
        from gristmill.stages.tokenize.bbpe import BbpeParams, train_on_samples

        texts = ["The quick brown fox jumps over the lazy dog. 0123456789", "def f(x):\n\treturn x * 2\n", "数据"]
        sample = pa.table({"text": texts, "source": ["contract"] * 3, "repeat": pa.array([50] * 3, pa.int32())})
        tokenizer_json, _ = train_on_samples(BbpeParams(vocab_size=300).model_dump_json(), sample)
        path = os.path.join(str(tmp_path), TOKENIZER_FILE)
        with open(path, "w", encoding="utf-8") as f:
            f.write(tokenizer_json)
        return {"path": path}

    def tokenizer_location(self) -> Location:
        if self.params.path is not None:
            return resolve(self.params.path)
        if self.layout is None:
            raise ValueError(
                "tokenize.bbpe_v1 needs a tokenizer: set params.path, or run it after "
                "tokenizer.train_bbpe_v1 so RUN_DIR/tokenizer/tokenizer.json exists"
            )
        return self.layout.tokenizer

    def setup(self) -> None:
        tokenizers = require("tokenizers", "tokenize")
        location = self.tokenizer_location()
        try:  # read at once: asking first whether it exists is one more round trip on an object store
            text = location.read_text()
        except (FileNotFoundError, IsADirectoryError):
            raise FileNotFoundError(f"tokenize.bbpe_v1: tokenizer file {location} does not exist") from None
        _limit_native_threads(self.worker_cpus)
        tokenizer = tokenizers.Tokenizer.from_str(text)
        tokenizer.encode_special_tokens = not self.params.parse_special_tokens
        self.tokenizer = tokenizer
        self.encode = self._tiktoken_engine(location, json.loads(text))
        self.engine = "tokenizers" if self.encode is None else "tiktoken"
        if self.encode is None:
            self.encode = functools.partial(encode_ids, tokenizer)

    def _tiktoken_engine(self, location: Location, spec: dict) -> TiktokenEngine | None:
        """The tiktoken engine when the params ask for it (or allow it and it is proven identical), else None."""
        if self.params.engine == "tokenizers":
            return None
        if self.params.engine == "auto" and importlib.util.find_spec("tiktoken") is None:
            return None
        try:
            return load_tiktoken_engine(location, self.tokenizer, self.params.parse_special_tokens, spec)
        except TiktokenIncompatible:
            if self.params.engine == "tiktoken":
                raise
            return None

    def process(self, table: pa.Table) -> StageOutput:
        if self.encode is None:
            self.setup()
        text = pc.fill_null(table["text"], "")
        sizes = pc.binary_length(text).to_numpy(zero_copy_only=False)
        chunks = [
            self.encode(text.slice(start, stop - start).to_pylist())
            for start, stop in batch_bounds(sizes, self.params.batch_bytes)
        ]
        tokens = pa.chunked_array(chunks, type=TOKENS_TYPE)
        n_tokens = pc.list_value_length(tokens).cast(pa.int32())
        counters = {f"engine_{self.engine}": table.num_rows} if table.num_rows else None
        return StageOutput(_put(_put(table, TOKENS, tokens), N_TOKENS, n_tokens), None, counters)


def _put(table: pa.Table, name: str, column: pa.ChunkedArray) -> pa.Table:
    """Add ``name``, or replace it in place when an earlier run of the stage left one."""
    index = table.schema.get_field_index(name)
    if index >= 0:
        return table.set_column(index, name, column)
    return table.append_column(name, column)
