"""``clean.normalize_v1``: mojibake repair, Unicode normalization, control characters, whitespace.

Everything but the mojibake repair is a handful of Arrow compute passes (RE2 regex replacement,
``utf8_normalize``) over the whole batch. ftfy is per-string Python, so it runs only on the rows that a
vectorized RE2 pre-check flags as likely mojibake: a character that starts a UTF-8 sequence when read as
cp1252 / latin-1 / cp1251 / ... followed by the right number of characters that are UTF-8 continuation bytes
in those encodings (the clue tables are ftfy's own, ``ftfy.chardata.UTF8_CLUES``), e.g. ``Ã©``, ``â€™``,
``ä¸­``. Clean text in any language essentially never matches, so ftfy's cost is paid only where it helps.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import unicodedata
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from gristmill.core.compile_cache import cached_bytes
from gristmill.stages.base import StageOutput, StageParams, StreamingStage, require
from gristmill.stages.clean._text import on_rows, source_mask, text_array, with_text

# Line breaks other than "\n" (CR LF, CR, VT, FF, NEL, LINE/PARAGRAPH SEPARATOR) become "\n", so removing
# control characters never glues two lines together.
LINE_BREAKS = r"\r\n|[\r\x0B\x0C\x{85}\x{2028}\x{2029}]"
# C0 and C1 control characters except \t and \n (the line breaks above are already "\n"), DEL, and the
# byte-order mark / zero-width no-break space, which is invisible noise inside a document.
CONTROL_CHARS = r"[\x00-\x08\x0E-\x1F\x7F-\x9F\x{FEFF}]"
# Unicode space separators (Zs) other than the ASCII space: no-break, en/em/thin spaces, ideographic space.
UNICODE_SPACES = r"[\x{A0}\x{1680}\x{2000}-\x{200A}\x{202F}\x{205F}\x{3000}]"


@functools.cache
def mojibake_pattern() -> str:
    """RE2 pattern for UTF-8 that was decoded with a single-byte codepage, built from ftfy's clue tables.

    ftfy's own detector uses a look-behind RE2 lacks; without it the pre-check flags a few more rows, which
    only costs ftfy calls that change nothing. The strict continuation class (no plain space) keeps German
    ``ß `` and the like from being flagged; ``Ã `` (``à`` whose no-break space became a space) and the lossy
    ``â€`` are added back explicitly because they are the most common mojibake in the wild.
    """
    chardata = require("ftfy.chardata", "clean")
    clues = chardata.UTF8_CLUES
    cont = f"[{clues['utf8_continuation_strict']}]"
    return (
        f"[{clues['utf8_first_of_2']}]{cont}"
        f"|[{clues['utf8_first_of_3']}]{cont}{{2}}"
        f"|[{clues['utf8_first_of_4']}]{cont}{{3}}"
        "|Ã |â€"
    )


@functools.cache
def _ftfy_fixer():
    ftfy = require("ftfy", "clean")
    # Only the encoding repairs: every other ftfy step (quotes, widths, ligatures, HTML entities, line
    # breaks, normalization) is either a separate switch of this stage or changes text that is not broken.
    config = ftfy.TextFixerConfig(
        unescape_html=False,
        remove_terminal_escapes=False,
        fix_latin_ligatures=False,
        fix_character_width=False,
        uncurl_quotes=False,
        fix_line_breaks=False,
        remove_control_chars=False,
        normalization=None,
        explain=False,
    )
    return functools.partial(ftfy.fix_text, config=config)


def fix_mojibake(text: pa.Array) -> pa.Array:
    """Repair mojibake with ftfy, calling it only on the rows the RE2 pre-check flags."""
    flagged = pc.fill_null(pc.match_substring_regex(text, mojibake_pattern()), False)

    def repair(rows: pa.Array) -> pa.Array:
        fix = _ftfy_fixer()
        return pa.array([None if s is None else fix(s) for s in rows.to_pylist()], pa.large_string())

    return on_rows(text, flagged, repair)


@functools.cache
def unstable_chars_pattern(form: str) -> str:
    """RE2 class of the characters that can change, or make a neighbour change, under ``form``.

    A string without any of them is already normalized, so ``utf8_normalize`` (utf8proc, ~50 MB/s) runs only
    on the rows that have one. The class holds: characters that ``form`` maps to something else (quick check
    "No"), characters with a non-zero combining class (reordering), second halves of canonical compositions
    and the Hangul vowel/trailing jamo (quick check "Maybe": they may compose with what precedes them), and
    every code point unassigned in this Python's Unicode database, so a character newer than it is never
    wrongly taken as stable. Derived from ``unicodedata`` (~0.3 s of CPU), once per machine: it is kept on disk
    (``compile_cache.cached_bytes``), keyed by the form, Python's Unicode database and this module's source.
    """
    with open(__file__, "rb") as f:
        source = hashlib.sha256(f.read()).hexdigest()
    key = "|".join([form, unicodedata.unidata_version, sys.version, source])
    return cached_bytes(f"unstable-{form}", key, lambda: _derive_unstable_chars_pattern(form).encode()).decode()


def _derive_unstable_chars_pattern(form: str) -> str:
    chars: set[int] = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        if unicodedata.category(ch) == "Cn" or unicodedata.combining(ch) or unicodedata.normalize(form, ch) != ch:
            chars.add(cp)
        decomposition = unicodedata.decomposition(ch)
        if decomposition and not decomposition.startswith("<"):
            chars.update(int(part, 16) for part in decomposition.split()[1:])
    ranges: list[list[int]] = []
    for cp in sorted(chars):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "[" + "".join(rf"\x{{{a:X}}}" if a == b else rf"\x{{{a:X}}}-\x{{{b:X}}}" for a, b in ranges) + "]"


def normalize_form(text: pa.Array, form: str) -> pa.Array:
    """Unicode-normalize the rows that are not normalized already (see ``unstable_chars_pattern``)."""
    unstable = pc.fill_null(pc.match_substring_regex(text, unstable_chars_pattern(form)), False)
    return on_rows(text, unstable, lambda rows: pc.utf8_normalize(rows, form=form))


# Any character the two passes above would touch; rows without one skip both.
NEEDS_CONTROL_PASS = r"[\x00-\x08\x0B-\x1F\x7F-\x9F\x{FEFF}\x{2028}\x{2029}]"
# Anything ``clean_whitespace`` would change; rows without one (most curated text) skip its five passes.
# (utf8_trim_whitespace also trims the separators \x1C-\x1F at either end.)
NEEDS_WHITESPACE_PASS = (
    UNICODE_SPACES[:-1] + r"\x{2028}\x{2029}]"
    + r"|[ \t]\n|[ \t]$|\S[ \t]{2}|\n\n\n|^[\s\x1C-\x1F]|[\s\x1C-\x1F]$"
)


def normalize_line_breaks(text: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(text, LINE_BREAKS, "\n")


def remove_control_chars(text: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(text, CONTROL_CHARS, "")


def rows_matching(text: pa.Array, pattern: str) -> pa.Array:
    return pc.fill_null(pc.match_substring_regex(text, pattern), False)


def clean_whitespace(text: pa.Array) -> pa.Array:
    """Unicode spaces -> ' ', no trailing blanks per line, runs of blanks inside a line -> one space, at most
    one empty line in a row, no leading/trailing whitespace in the document.

    Leading indentation is kept (runs are collapsed only after a non-blank character), because the same
    stage sees source code, where indentation is syntax.
    """
    text = pc.replace_substring_regex(text, UNICODE_SPACES, " ")
    text = pc.replace_substring_regex(text, r"[ \t]+(\n|$)", r"\1")
    text = pc.replace_substring_regex(text, r"(\S)[ \t]{2,}", r"\1 ")
    text = pc.replace_substring_regex(text, r"\n{3,}", "\n\n")
    return pc.utf8_trim_whitespace(text)


class Normalize(StreamingStage):
    """Unicode normalization, mojibake repair, control-character removal and whitespace cleanup of ``text``.

    Rows whose text ends up empty are rejected as ``normalize_empty`` (switch: ``reject_empty``).
    """

    name = "clean.normalize_v1"

    class Params(StageParams):
        # Unicode normalization form; None leaves code points as they are.
        form: Literal["NFC", "NFKC", "NFD", "NFKD"] | None = "NFC"
        fix_mojibake: bool = True
        remove_control_chars: bool = True
        normalize_whitespace: bool = True
        reject_empty: bool = True
        # Mixture sources the stage applies to; None = all. Rows of other sources pass through untouched.
        sources: list[str] | None = None

    def setup(self) -> None:
        # Build the cached RE2 patterns once per worker instead of inside the first batch.
        if self.params.fix_mojibake:
            mojibake_pattern()
            _ftfy_fixer()
        if self.params.form is not None:
            unstable_chars_pattern(self.params.form)

    def process(self, table: pa.Table) -> StageOutput:
        if table.num_rows == 0:
            return StageOutput(table, None)
        p = self.params
        applies = source_mask(table, p.sources)
        text = on_rows(text_array(table), applies, self.clean)
        reasons = None
        if p.reject_empty:
            empty = pc.fill_null(pc.equal(pc.binary_length(text), 0), True)
            if applies is not None:
                empty = pc.and_(empty, applies)
            if pc.any(empty).as_py():
                reasons = pc.if_else(empty, pa.scalar("normalize_empty"), pa.scalar(None, pa.string()))
        return StageOutput(with_text(table, text), reasons)

    def clean(self, text: pa.Array) -> pa.Array:
        """The enabled steps, in an order where each one sees what the previous one repaired."""
        p = self.params
        if p.fix_mojibake:
            # First: mojibake is a byte-level accident, and normalizing or deleting its C1 characters first
            # would destroy the bytes ftfy needs to undo it.
            text = fix_mojibake(text)
        if p.form is not None:
            text = normalize_form(text, p.form)
        if p.remove_control_chars or p.normalize_whitespace:
            text = on_rows(text, rows_matching(text, NEEDS_CONTROL_PASS), self.clean_controls)
        if p.normalize_whitespace:
            text = on_rows(text, rows_matching(text, NEEDS_WHITESPACE_PASS), clean_whitespace)
        return text

    def clean_controls(self, text: pa.Array) -> pa.Array:
        text = normalize_line_breaks(text)
        if self.params.remove_control_chars:
            text = remove_control_chars(text)
        return text
