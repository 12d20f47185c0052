"""The byte-level BPE tokenizer: its definition, training on a sample, and the files it is saved as.

Design choices (and why):

- Byte level throughout: a ``ByteLevel`` pre-tokenizer maps every byte to one of 256 printable characters and
  the trainer's initial alphabet is all 256 of them, so every byte string is representable and there is no
  unknown token. No normalizer: normalization (NFC, lowercasing) would break ``decode(encode(text)) == text``.
- Split regex: GPT-4 (cl100k) style, but with single digits (``\\p{N}`` instead of ``\\p{N}{1,3}``), then a
  ``Digits(individual_digits=True)`` pre-tokenizer so any custom regex still gets LLaMA-style digits.
- Two training stages (SuperBPE, Liu et al. 2025): the first learns merges within words (``split_regex``),
  the second, for the last ``superword_share`` of the vocabulary, continues from the first's tokens on pieces
  that run over several words (``superword_regex``), so frequent multi-word units (" of the", ", and the")
  become single tokens. Trained on a few MB of English web text, one stage stays ~7% short of GPT-2's
  bytes/token on held-out web text (it saw 40 GB); the second stage passes it (BENCHMARKS.md, issue 17 item 10).
  The tokenizer encodes with ``superword_regex`` and the merges of both stages in order: first-stage merges
  never cross its pieces' word boundaries, so encoding repeats the training's segmentation.
- Decoder: ``decoders.ByteLevel`` only. It maps the byte characters back to bytes and does no space cleanup
  (``clean_up_tokenization_spaces`` is a ``transformers`` option; ``tokenizers`` itself never applies it).
- Special tokens come first in the vocabulary (``<|endoftext|>`` = 0 is the document separator the packer
  inserts, ``<|pad|>`` = 1, then any extra and ``<|reserved_special_token_N|>`` placeholders).
- Determinism: the BPE trainer's result depends only on the word counts (merge ties are broken by pair ids,
  which follow the sorted alphabet), so the same sample gives byte-identical ``tokenizer.json`` whatever the
  thread count or process; ``tests/stages/tokenize/test_bbpe.py`` checks this across processes and with
  ``RAYON_NUM_THREADS=1``.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Iterator, Mapping

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from gristmill.core.layout import TOKENIZER_FILE, TOKENIZER_META_FILE
from gristmill.core.storage import Location, resolve
from gristmill.stages.base import StageParams, require

SEPARATOR_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
META_FORMAT = "gristmill.tokenizer_meta/1"

# GPT-4 (cl100k_base) pre-tokenization pattern with single digits instead of runs of 1-3: contractions,
# words with one leading non-letter (" word", "\tword"), single digits, punctuation runs with their trailing
# newlines, newline runs, and whitespace that leaves the last space to the next word.
SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# The pieces of the second (superword) training stage and of encoding: SPLIT_REGEX, except that a word goes on
# over single spaces into the next words, and over one of ``,;:`` right before such a space (", and the").
# Sentence ends, newlines, digits and other punctuation still split. Each piece is a run of whole SPLIT_REGEX
# pieces, and no SPLIT_REGEX piece holds a letter followed by anything or a ``,;:`` followed by a space, so no
# first-stage merge can join bytes across the pieces it runs over: first-stage merges split a superword piece
# exactly as they split its words one by one.
SUPERWORD_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+(?:[,;:]? \p{L}+)*|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Text handed to the trainer per Python list: big enough to amortize the call, small enough to bound memory.
_TRAIN_BATCH_ROWS = 1024


class BbpeParams(StageParams):
    """How to train the tokenizer (shared by the ``tokenizer.train_bbpe_v1`` stage and ``train-tokenizer``)."""

    vocab_size: int = Field(32000, ge=260)
    min_frequency: int = Field(2, ge=1)
    # Bytes of text in the training sample (drawn in ``source_weights`` proportions); all text when less.
    sample_bytes: int = Field(1_000_000_000, gt=0)
    # Target share per source (normalized). None: proportional to the bytes present. Sources absent from the
    # mapping are not sampled.
    source_weights: dict[str, float] | None = None
    # Or a mixture preset name / YAML path (``llama``): its token ratios become the source weights, so the
    # tokenizer is trained on text in the proportions the model will see.
    mixture: str | None = None
    # Used when neither of the above is given and every source in the input is one of the preset's sources
    # (a LLaMA-style run then trains on LLaMA shares, not on whatever source happens to be biggest).
    # None: the shares of the bytes present.
    default_mixture: str | None = "llama"
    # How many times a source short of its share may be repeated in the sample (1.0 = never).
    max_epochs: float = Field(1.0, ge=1.0)
    # When sources fall short of their shares the others fill the sample; none may end up above this multiple
    # of its target share: the sample is made smaller instead. None: no bound.
    max_share_ratio: float | None = Field(1.5, ge=1.0)
    # Sampling seed; None = the run's seed.
    seed: int | None = None
    special_tokens: tuple[str, ...] = (SEPARATOR_TOKEN, PAD_TOKEN)
    # Placeholder special tokens kept free for later use (chat roles, FIM, ...), LLaMA-3 style.
    reserved_special_tokens: int = Field(0, ge=0)
    individual_digits: bool = True
    split_regex: str = SPLIT_REGEX
    # Share of the merges (the vocabulary less bytes and special tokens) learned by the second, superword
    # stage; 0: one stage, within-word merges only.
    superword_share: float = Field(0.4, ge=0.0, lt=1.0)
    # The second stage's pieces, which the tokenizer then encodes with: each must be a run of whole
    # ``split_regex`` pieces that no first-stage merge can cross (SUPERWORD_REGEX is, for SPLIT_REGEX).
    superword_regex: str = SUPERWORD_REGEX
    max_token_length: int | None = Field(None, ge=1)
    # On Ray: CPUs the training task reserves. None = every CPU of the largest node.
    num_cpus: int | None = Field(None, ge=1)

    @field_validator("source_weights")
    @classmethod
    def _weights_positive(cls, weights: dict[str, float] | None) -> dict[str, float] | None:
        if weights is None:
            return None
        bad = {k: v for k, v in weights.items() if not (v >= 0 and np.isfinite(v))}
        if bad:
            raise ValueError(f"source_weights must be finite and >= 0; got {bad}")
        if not any(v > 0 for v in weights.values()):
            raise ValueError("source_weights needs at least one source with a weight > 0")
        return dict(sorted(weights.items()))

    @field_validator("special_tokens")
    @classmethod
    def _separator_first(cls, tokens: tuple[str, ...]) -> tuple[str, ...]:
        if not tokens or tokens[0] != SEPARATOR_TOKEN:
            raise ValueError(f"special_tokens must start with the document separator {SEPARATOR_TOKEN!r}")
        if len(set(tokens)) != len(tokens) or any(not t for t in tokens):
            raise ValueError(f"special_tokens must be distinct and non-empty; got {list(tokens)}")
        return tokens

    @field_validator("split_regex", "superword_regex")
    @classmethod
    def _regex_compiles(cls, pattern: str) -> str:
        tokenizers = require("tokenizers", "tokenize")
        try:
            tokenizers.pre_tokenizers.Split(tokenizers.Regex(pattern), behavior="isolated")
        except Exception as exc:
            raise ValueError(f"regex does not compile: {exc}") from None
        return pattern

    @model_validator(mode="after")
    def _first_stage_fits_token_chars(self) -> "BbpeParams":
        if self.superword_share > 0 and first_stage_vocab_size(self) > _TOKEN_CHARS:
            raise ValueError(f"the superword stage takes first-stage vocabularies up to {_TOKEN_CHARS} tokens; "
                             f"this one has {first_stage_vocab_size(self)}: raise superword_share or lower vocab_size")
        return self

    @model_validator(mode="after")
    def _superword_regex_fits_split_regex(self) -> "BbpeParams":
        if self.superword_share > 0 and self.split_regex != SPLIT_REGEX and self.superword_regex == SUPERWORD_REGEX:
            raise ValueError(
                "a custom split_regex needs its own superword_regex (pieces made of whole split_regex pieces), "
                "or superword_share: 0"
            )
        return self

    @model_validator(mode="after")
    def _weights_from_mixture(self) -> "BbpeParams":
        if self.mixture is not None:
            if self.source_weights is not None:
                raise ValueError("give either `mixture` or `source_weights`, not both")
            self.weights()  # an unknown preset fails here, at validation
        if self.default_mixture is not None:
            from gristmill.mixtures.solver import load_mixture

            load_mixture(self.default_mixture)
        return self

    def weights(self) -> dict[str, float] | None:
        """The per-source target shares of the sample: the mixture's ratios, the given weights, or None."""
        if self.mixture is not None:
            from gristmill.mixtures.solver import load_mixture

            return dict(load_mixture(self.mixture).ratios)
        return self.source_weights

    def weights_for(self, sources: list[str]) -> tuple[dict[str, float] | None, str]:
        """``weights()``, or ``default_mixture``'s when none are given and fit ``sources``; and which it was."""
        if self.mixture is not None:
            return self.weights(), f"mixture {self.mixture!r}"
        if self.source_weights is not None:
            return self.source_weights, "source_weights"
        from gristmill.stages.tokenize.sample import default_weights

        return default_weights(sources, self.default_mixture)

    @model_validator(mode="after")
    def _room_for_merges(self) -> "BbpeParams":
        floor = 256 + len(self.all_special_tokens())
        if self.vocab_size <= floor:
            raise ValueError(
                f"vocab_size {self.vocab_size} leaves no room for merges: 256 bytes + "
                f"{floor - 256} special tokens already take {floor}"
            )
        return self

    def all_special_tokens(self) -> list[str]:
        reserved = [f"<|reserved_special_token_{i}|>" for i in range(self.reserved_special_tokens)]
        return [*self.special_tokens, *reserved]


def _pre_tokenizer(params: BbpeParams, pattern: str) -> Any:
    tk = require("tokenizers", "tokenize")
    pre = [tk.pre_tokenizers.Split(tk.Regex(pattern), behavior="isolated")]
    if params.individual_digits:
        pre.append(tk.pre_tokenizers.Digits(individual_digits=True))
    # use_regex=False: the split above already did the GPT-style splitting; this step only maps bytes.
    pre.append(tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
    return tk.pre_tokenizers.Sequence(pre)


def new_tokenizer(params: BbpeParams) -> Any:
    """An untrained byte-level BPE tokenizer with the first stage's pre-tokenizer and the decoder."""
    tk = require("tokenizers", "tokenize")
    tokenizer = tk.Tokenizer(tk.models.BPE())
    tokenizer.pre_tokenizer = _pre_tokenizer(params, params.split_regex)
    tokenizer.decoder = tk.decoders.ByteLevel()
    return tokenizer


def first_stage_vocab_size(params: BbpeParams) -> int:
    """The vocabulary the first stage trains to; the second stage's merges fill the rest."""
    floor = 256 + len(params.all_special_tokens())
    return params.vocab_size - round(params.superword_share * (params.vocab_size - floor))


def _trainer(params: BbpeParams, vocab_size: int) -> Any:
    tk = require("tokenizers", "tokenize")
    options: dict[str, Any] = dict(
        vocab_size=vocab_size,
        min_frequency=params.min_frequency,
        special_tokens=params.all_special_tokens(),
        # All 256 byte characters, seen or not: no byte can ever be unknown.
        initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    if params.max_token_length is not None:
        options["max_token_length"] = params.max_token_length
    return tk.trainers.BpeTrainer(**options)


def _sample_texts(samples: list[pa.Table]) -> Iterator[list[str]]:
    """The sample's texts in lists, each document as many times as its ``repeat`` count."""
    for table in samples:
        if table.num_rows == 0:
            continue
        text = table.column("text")
        repeat = table.column("repeat").to_numpy()
        if (repeat != 1).any():
            text = text.take(pa.array(np.repeat(np.arange(len(repeat)), repeat)))
        for offset in range(0, len(text), _TRAIN_BATCH_ROWS):
            yield text.slice(offset, _TRAIN_BATCH_ROWS).to_pylist()


def sample_summary(samples: list[pa.Table]) -> dict[str, dict[str, int]]:
    """Bytes and documents per source actually in the sample (repeats counted)."""
    import pyarrow.compute as pc

    totals: dict[str, dict[str, int]] = {}
    for table in samples:
        if table.num_rows == 0:
            continue
        weighted = pa.table(
            {
                "source": table.column("source"),
                "bytes": pc.multiply(pc.binary_length(table.column("text")), table.column("repeat").cast(pa.int64())),
                "docs": table.column("repeat").cast(pa.int64()),
            }
        )
        for row in weighted.group_by("source").aggregate([("bytes", "sum"), ("docs", "sum")]).to_pylist():
            entry = totals.setdefault(row["source"], {"bytes": 0, "documents": 0})
            entry["bytes"] += row["bytes_sum"]
            entry["documents"] += row["docs_sum"]
    return dict(sorted(totals.items()))


# The second stage writes each first-stage token as one character from the start of Unicode's plane-15 private
# use area to the last code point (planes 15 and 16: no text character, none whitespace), so the BPE trainer,
# which merges characters, merges whole tokens.
_TOKEN_CHAR_BASE = 0xF0000
_TOKEN_CHARS = 0x110000 - _TOKEN_CHAR_BASE


def _superword_words(tokenizer: Any, samples: list[pa.Table]) -> Iterator[list[str]]:
    """The sample as the second stage's words: each superword piece of each document (``tokenizer``: the
    first stage's merges with the superword pre-tokenizer) as its first-stage tokens, one character each;
    pieces separated by a space, which no token character is."""
    for texts in _sample_texts(samples):
        words = []
        for encoding in tokenizer.encode_batch(texts, add_special_tokens=False):
            chars = np.asarray(encoding.ids, dtype=np.uint32) + _TOKEN_CHAR_BASE
            pieces = np.asarray(encoding.word_ids, dtype=np.int64)
            cuts = np.flatnonzero(pieces[1:] != pieces[:-1]) + 1
            words.append(np.insert(chars, cuts, ord(" ")).astype("<u4").tobytes().decode("utf-32-le"))
        yield words


def _superword_merges(tokenizer: Any, params: BbpeParams, samples: list[pa.Table], count: int) -> list[list[str]]:
    """Up to ``count`` merges of the second stage, as pairs of token-character strings, in merge order."""
    tk = require("tokenizers", "tokenize")
    alphabet = [chr(_TOKEN_CHAR_BASE + i) for i in range(tokenizer.get_vocab_size(with_added_tokens=True))]
    trainer = tk.trainers.BpeTrainer(vocab_size=len(alphabet) + count, min_frequency=params.min_frequency,
                                     initial_alphabet=alphabet, limit_alphabet=len(alphabet), show_progress=False)
    second = tk.Tokenizer(tk.models.BPE())
    second.pre_tokenizer = tk.pre_tokenizers.WhitespaceSplit()
    second.train_from_iterator(_superword_words(tokenizer, samples), trainer=trainer)
    merges = json.loads(second.to_str())["model"]["merges"]
    return [m.split(" ") if isinstance(m, str) else m for m in merges]


def add_superword_stage(tokenizer: Any, params: BbpeParams, samples: list[pa.Table]) -> tuple[Any, int]:
    """The first-stage ``tokenizer`` with the second stage's merges after its own (new ids above its ids) and
    the superword pre-tokenizer; and the number of merges added."""
    tk = require("tokenizers", "tokenize")
    tokenizer.pre_tokenizer = _pre_tokenizer(params, params.superword_regex)
    count = params.vocab_size - tokenizer.get_vocab_size(with_added_tokens=True)
    if count <= 0:
        return tokenizer, 0
    spec = json.loads(tokenizer.to_str())
    vocab, merges = spec["model"]["vocab"], spec["model"]["merges"]
    token_of = {token_id: token for token, token_id in vocab.items()}
    next_id = max(vocab.values()) + 1
    added = 0
    for left, right in _superword_merges(tokenizer, params, samples, count):
        pair = ["".join(token_of[ord(c) - _TOKEN_CHAR_BASE] for c in side) for side in (left, right)]
        # Two token sequences can spell the same bytes; the bytes get one token (the first merge's).
        if pair[0] + pair[1] in vocab or len(pair[0] + pair[1]) > (params.max_token_length or float("inf")):
            continue
        vocab[pair[0] + pair[1]] = next_id
        merges.append(pair)
        next_id, added = next_id + 1, added + 1
        if added == count:
            break
    return tk.Tokenizer.from_str(json.dumps(spec)), added


def train_on_samples(params_json: str, *samples: pa.Table) -> tuple[str, dict[str, Any]]:
    """Train on sample tables (columns ``text``, ``source``, ``repeat``) and return (tokenizer JSON, facts).

    Takes the params as JSON and the samples as separate arguments so that on Ray it runs as one task whose
    arguments are the sampling tasks' object refs: the sample goes straight to the training worker.
    """
    params = BbpeParams.model_validate_json(params_json)
    tokenizer = new_tokenizer(params)
    sample = list(samples)
    started = time.perf_counter()
    tokenizer.train_from_iterator(_sample_texts(sample), trainer=_trainer(params, first_stage_vocab_size(params)))
    first_stage_vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    superword_merges = 0
    if params.superword_share > 0:
        tokenizer, superword_merges = add_superword_stage(tokenizer, params, sample)
    seconds = time.perf_counter() - started
    facts = {"training_seconds": round(seconds, 3), "sample_sources": sample_summary(sample),
             "first_stage_vocab_size": first_stage_vocab, "superword_merges": superword_merges}
    return tokenizer.to_str(pretty=True), facts


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()




def build_meta(
    params: BbpeParams,
    tokenizer_json: str,
    facts: Mapping[str, Any],
    plan: Mapping[str, Any],
    seed: int,
) -> dict[str, Any]:
    """The metadata saved next to ``tokenizer.json``: what it was trained on and how."""
    tk = require("tokenizers", "tokenize")
    tokenizer = tk.Tokenizer.from_str(tokenizer_json)
    sources = dict(facts["sample_sources"])
    total_bytes = sum(s["bytes"] for s in sources.values())
    per_source = {}
    for name, available in plan["available"].items():
        got = sources.get(name, {"bytes": 0, "documents": 0})
        per_source[name] = {
            "available_bytes": available["bytes"],
            "available_documents": available["documents"],
            "target_share": plan["target_share"].get(name, 0.0),
            "bytes": got["bytes"],
            "documents": got["documents"],
            "share": round(got["bytes"] / total_bytes, 6) if total_bytes else 0.0,
        }
    specials = {t: tokenizer.token_to_id(t) for t in params.all_special_tokens()}
    return {
        "format": META_FORMAT,
        "stage": "tokenizer.train_bbpe_v1",
        "tokenizer_file": TOKENIZER_FILE,
        "tokenizer_sha256": sha256_text(tokenizer_json),
        "vocab_size": tokenizer.get_vocab_size(with_added_tokens=True),
        "vocab_size_requested": params.vocab_size,
        "special_tokens": specials,
        "separator_token": SEPARATOR_TOKEN,
        "separator_id": specials[SEPARATOR_TOKEN],
        "pad_id": specials.get(PAD_TOKEN),
        # The tokenize stage encodes special-token strings found inside documents as ordinary text.
        "special_tokens_in_text": "encoded_as_text",
        "sample": {
            "seed": seed,
            "sample_bytes_requested": params.sample_bytes,
            "bytes": total_bytes,
            "documents": sum(s["documents"] for s in sources.values()),
            "sources": per_source,
        },
        "training_seconds": facts["training_seconds"],
        "first_stage_vocab_size": facts["first_stage_vocab_size"],
        "superword_merges": facts["superword_merges"],
        "tokenizers_version": tk.__version__,
        "params": json.loads(params.model_dump_json()),
    }


def save_tokenizer(out_dir: str | Location, tokenizer_json: str, meta: Mapping[str, Any]) -> Location:
    """Write ``tokenizer.json`` and ``tokenizer_meta.json`` into ``out_dir``; return the tokenizer's location."""
    out = resolve(out_dir)
    out.mkdir()
    (out / TOKENIZER_FILE).write_text(tokenizer_json)
    # Metadata last: its presence says the tokenizer next to it is complete.
    (out / TOKENIZER_META_FILE).write_json(meta)
    return out / TOKENIZER_FILE
