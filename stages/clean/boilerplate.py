"""``clean.boilerplate_v1``: C4-style line rules (Raffel et al. 2020, "Colossal Clean Crawled Corpus").

All lines of a batch are judged at once: the texts are split into a ListArray of lines, the list values are
flattened, one boolean mask is computed over every line of the batch, and the kept lines are joined back per
document through the list offsets. There is no per-document Python loop.

As in C4, a line is judged after stripping it, kept lines are stripped, and the document is rebuilt with
"\\n" between kept lines (blank lines go). Differences from C4, chosen so that other languages survive:

* terminal punctuation also accepts ``…``, the CJK ``。！？．``, closing quotes ``”」』``, the Devanagari
  danda ``।`` and the Arabic question mark ``؟`` (configurable); as in C4, a line ending in an ellipsis
  (``...`` or ``…``) is still dropped as a likely truncated teaser ("Read more..."), unless
  ``drop_ellipsis_lines`` is off;
* the word count counts CJK characters (Han, Hiragana, Katakana) at ``cjk_chars_per_word`` characters a word,
  since Chinese and Japanese lines have no spaces (C4 counted them as one word and dropped them all);
* the curly-brace rule (C4 drops any page with ``{``) is off by default: code sources need braces;
* ``lorem ipsum`` rejects the whole document by default, as in C4 (a placeholder page has no real content
  left once its filler is gone); ``lorem_ipsum: line`` drops just those lines instead.

Rows whose ``source`` is not in ``sources`` (default: all) pass through untouched; line rules make no sense
for code, so a mixture with a ``github`` source should list the prose sources here.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pydantic import Field

from gristmill.stages.base import StageOutput, StageParams, StreamingStage
from gristmill.stages.clean._text import source_mask, text_array, with_text

# C4's policy substrings (c4_utils.clean_page), matched case-insensitively.
C4_POLICY_PHRASES = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
]
_CJK_LETTERS = r"\p{Han}\p{Hiragana}\p{Katakana}"
# CJK Symbols and Punctuation, and the fullwidth punctuation of Halfwidth and Fullwidth Forms.
_CJK_PUNCT = r"\x{3000}-\x{303F}\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF20}\x{FF3B}-\x{FF40}\x{FF5B}-\x{FF65}"
CJK_CHAR = f"[{_CJK_LETTERS}]"
CJK_ANY = f"[{_CJK_LETTERS}{_CJK_PUNCT}]"
# A space-delimited "word": a run of characters that are neither whitespace, CJK letters nor CJK punctuation,
# so in "你好，世界" the comma is no word. On a line without CJK this is exactly C4's ``len(line.split())``.
NON_CJK_WORD = rf"[^\s{_CJK_LETTERS}{_CJK_PUNCT}]+"
NON_BLANK_LINE = r"\S[^\n]*"
_RE2_SPECIAL = set("\\.^$|?*+()[]{}")


def re2_escape(literal: str) -> str:
    return "".join("\\" + c if c in _RE2_SPECIAL else c for c in literal)


def _null_strings(n: int) -> pa.Array:
    return pa.nulls(n, pa.string())


class Boilerplate(StreamingStage):
    """Drop boilerplate lines (C4 rules, each switchable); reject documents left empty or too short.

    Reject reasons: ``boilerplate_lorem_ipsum``, ``boilerplate_curly_brace``, ``boilerplate_empty`` (no line
    left), ``boilerplate_too_short`` (fewer than ``min_lines`` lines or ``min_chars`` characters left).
    Rejected rows keep their original text, so ``rejects/`` shows what was dropped.
    """

    name = "clean.boilerplate_v1"

    class Params(StageParams):
        # Mixture sources the stage applies to; None = all. Rows of other sources pass through untouched.
        sources: list[str] | None = None
        require_terminal_punctuation: bool = True
        # A kept line's last character must be one of these.
        terminal_punctuation: str = '.!?"…。！？．”」』।؟'
        # C4: a line ending in "..." is a truncated teaser even though it ends in "."; "…" counts the same.
        drop_ellipsis_lines: bool = True
        drop_javascript_lines: bool = True
        drop_policy_lines: bool = True
        policy_phrases: list[str] = C4_POLICY_PHRASES
        # "document": reject the document (C4); "line": drop just the lines; "off".
        lorem_ipsum: Literal["document", "line", "off"] = "document"
        # Lines with fewer words are dropped (C4: 3); 0 turns the rule off.
        min_words_per_line: int = Field(3, ge=0, le=1000)
        # CJK characters per word when counting words of unspaced scripts.
        cjk_chars_per_word: float = Field(2.0, gt=0)
        # C4: lines with a "word" longer than this (a URL, base64, minified code) are dropped; 0 = off.
        max_word_length: int = 1000
        # C4 rejects every page containing "{" (code); off by default because code sources need braces.
        reject_curly_braces: bool = False
        # What must remain of a document (after the line rules) for it to be kept.
        min_lines: int = 1
        min_chars: int = 0

    def process(self, table: pa.Table) -> StageOutput:
        if table.num_rows == 0:
            return StageOutput(table, None)
        applies = source_mask(table, self.params.sources)
        text = text_array(table)
        if applies is None:
            new_text, reasons = self.clean(text)
        else:
            if not pc.any(applies).as_py():
                return StageOutput(table, None)
            new_sub, reasons_sub = self.clean(text.filter(applies))
            new_text = pc.replace_with_mask(text, applies, new_sub)
            reasons = pc.replace_with_mask(_null_strings(len(text)), applies, reasons_sub)
        if reasons.null_count == len(reasons):
            reasons = None
        return StageOutput(with_text(table, new_text), reasons)

    @property
    def line_rules_enabled(self) -> bool:
        p = self.params
        return (
            p.require_terminal_punctuation
            or p.drop_javascript_lines
            or (p.drop_policy_lines and bool(p.policy_phrases))
            or p.lorem_ipsum == "line"
            or p.min_words_per_line > 0
            or p.max_word_length > 0
            or p.drop_ellipsis_lines
        )

    def clean(self, text: pa.Array) -> tuple[pa.Array, pa.Array]:
        """Cleaned texts and reject reasons for a batch that the stage applies to entirely."""
        if self.line_rules_enabled:
            cleaned, line_counts = self.drop_lines(text)
        else:
            cleaned = text
            line_counts = pc.fill_null(pc.count_substring_regex(text, NON_BLANK_LINE), 0).to_numpy()
        reasons = self.reject_reasons(text, cleaned, line_counts)
        # A rejected row keeps its original text, so rejects/ shows what the rules saw.
        if reasons.null_count == len(reasons):
            return cleaned, reasons
        return pc.if_else(pc.is_valid(reasons), text, cleaned), reasons

    def drop_lines(self, text: pa.Array) -> tuple[pa.Array, np.ndarray]:
        """Apply the line rules to every line of the batch at once; return rejoined texts and line counts."""
        lines = pc.split_pattern(text, "\n")
        flat = pc.utf8_trim_whitespace(lines.flatten())
        parent = pc.list_parent_indices(lines).to_numpy()
        keep = self.line_mask(flat)
        counts = np.bincount(parent[keep], minlength=len(text))
        offsets = np.zeros(len(text) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        kept = pa.LargeListArray.from_arrays(pa.array(offsets), flat.filter(pa.array(keep)))
        joined = pc.binary_join(kept, pa.scalar("\n", pa.large_string()))
        return joined, counts

    def line_mask(self, lines: pa.Array) -> np.ndarray:
        """True for each (stripped) line that every enabled rule keeps.

        The cheap rules (a line's last character, its ending) run on all lines; the regex rules then run only
        on the lines still kept, since on web pages the punctuation rule alone drops most menu/link lines.
        """
        p = self.params
        if p.require_terminal_punctuation:  # an empty line has no last character in the set either
            last = pc.utf8_slice_codeunits(lines, start=-1)
            keep = _np(pc.is_in(last, value_set=_characters(p.terminal_punctuation)))
        else:
            keep = _np(pc.greater(pc.binary_length(lines), 0))
        if p.drop_ellipsis_lines:
            keep &= ~(_np(pc.ends_with(lines, "...")) | _np(pc.ends_with(lines, "…")))
        candidates = np.flatnonzero(keep)
        if len(candidates) == 0:
            return keep
        if len(candidates) < len(lines):
            lines = lines.take(pa.array(candidates))
        keep[candidates] = self.regex_rules(lines)
        return keep

    def regex_rules(self, lines: pa.Array) -> np.ndarray:
        """True for each line that the content rules (phrases, word counts, long words) keep."""
        p = self.params
        keep = np.ones(len(lines), dtype=bool)
        phrases = []
        if p.drop_javascript_lines:
            phrases.append("javascript")
        if p.drop_policy_lines:
            phrases += p.policy_phrases
        if p.lorem_ipsum == "line":
            phrases.append("lorem ipsum")
        if phrases:
            keep &= ~_np(pc.match_substring_regex(lines, _any_of(tuple(phrases)), ignore_case=True))
        if p.min_words_per_line > 0:
            keep &= self.enough_words(lines)
        if p.max_word_length > 0:
            keep &= ~self.has_long_word(lines)
        return keep

    def enough_words(self, lines: pa.Array) -> np.ndarray:
        """True for lines with at least ``min_words_per_line`` words (``word_counts``).

        Counting words with a regex runs at ~30 MB/s, so lines without CJK only need a match of N
        space-separated tokens (RE2 stops at the N-th); the exact count runs on the CJK lines alone.
        """
        n = self.params.min_words_per_line
        has_cjk = _np(pc.match_substring_regex(lines, CJK_ANY))
        result = _np(pc.match_substring_regex(lines, r"\S+" + r"\s+\S+" * (n - 1))) & ~has_cjk
        if has_cjk.any():
            result[has_cjk] = self.word_counts(lines.filter(pa.array(has_cjk))) >= n
        return result

    def word_counts(self, lines: pa.Array) -> np.ndarray:
        """Space-delimited words plus CJK characters / ``cjk_chars_per_word``."""
        words = _np_int(pc.count_substring_regex(lines, NON_CJK_WORD)).astype(np.float64)
        cjk = _np_int(pc.count_substring_regex(lines, CJK_CHAR))
        return words + cjk / self.params.cjk_chars_per_word

    def has_long_word(self, lines: pa.Array) -> np.ndarray:
        """True for lines with a whitespace-delimited word longer than ``max_word_length`` characters."""
        limit = self.params.max_word_length
        # Only lines longer than the limit can hold such a word; they are rare, so split just those.
        long_lines = _np(pc.greater(pc.utf8_length(lines), limit))
        result = np.zeros(len(lines), dtype=bool)
        if not long_lines.any():
            return result
        words = pc.utf8_split_whitespace(lines.filter(pa.array(long_lines)))
        word_lengths = _np_int(pc.utf8_length(words.flatten()))
        longest = np.zeros(len(words), dtype=np.int64)
        np.maximum.at(longest, pc.list_parent_indices(words).to_numpy(), word_lengths)
        result[long_lines] = longest > limit
        return result

    def reject_reasons(self, original: pa.Array, cleaned: pa.Array, line_counts: np.ndarray) -> pa.Array:
        """One reason per row (null = keep), the first that applies in order of how telling it is."""
        p = self.params
        rules: list[tuple[str, np.ndarray]] = []
        if p.lorem_ipsum == "document":
            lorem = _np(pc.match_substring(original, "lorem ipsum", ignore_case=True))
            rules.append(("boilerplate_lorem_ipsum", lorem))
        if p.reject_curly_braces:
            rules.append(("boilerplate_curly_brace", _np(pc.match_substring(original, "{"))))
        rules.append(("boilerplate_empty", line_counts == 0))
        too_short = line_counts < p.min_lines
        if p.min_chars > 0:
            too_short |= _np_int(pc.utf8_length(cleaned)) < p.min_chars
        rules.append(("boilerplate_too_short", too_short))

        reasons = np.full(len(original), None, dtype=object)
        undecided = np.ones(len(original), dtype=bool)
        for reason, hit in rules:
            chosen = hit & undecided
            reasons[chosen] = reason
            undecided &= ~chosen
        return pa.array(reasons, pa.string())


@functools.lru_cache(maxsize=8)
def _any_of(phrases: tuple[str, ...]) -> str:
    """An RE2 pattern matching any of the literal ``phrases``."""
    return "|".join(re2_escape(phrase) for phrase in phrases)


@functools.lru_cache(maxsize=8)
def _characters(chars: str) -> pa.Array:
    return pa.array(list(chars), pa.large_string())


def _np(mask: pa.Array) -> np.ndarray:
    """A boolean Arrow array as numpy, null counted as false."""
    return (pc.fill_null(mask, False) if mask.null_count else mask).to_numpy(zero_copy_only=False)


def _np_int(counts: pa.Array) -> np.ndarray:
    return (pc.fill_null(counts, 0) if counts.null_count else counts).to_numpy(zero_copy_only=False)
