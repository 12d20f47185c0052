"""``clean.pii_v1``: replace e-mail addresses, IPv4/IPv6 addresses and phone numbers with placeholders.

Each kind is one RE2 pattern run with Arrow's ``replace_substring_regex``, only over the rows a cheap
vectorized pre-check selects: one RE2 match over the batch for all enabled kinds at once ("@" stands in for
e-mail addresses), then, on the rows it flags (a few percent of web text), one match per kind. RE2 has no
look-around, so each pattern captures the character before the match (``(^|[^...])``) and the one after it
and writes both back; a separator can then belong to only one match, so the replacement runs a second time
to catch back-to-back addresses ("10.0.0.1 10.0.0.2").

What is and is not redacted (choices, so the rules stay predictable):

* e-mail: ``local@domain.tld`` with a 2+ letter ASCII TLD, Latin letters with accents allowed in the name;
  CJK characters around it are boundaries (``联系abc@qq.com谢谢``); ``@handles``, ``user@localhost``
  and decorators are left. File names like ``icon@2x.png`` look exactly like addresses and are redacted.
* IPv4: four dot-separated octets 0-255 without leading zeros, at least one of them with two or more digits,
  not glued to a letter, digit or dot on either side. So ``1.2.3.256``, ``01.02.03.04``, ``v1.2.3.4``, the
  version ``1.2.3.4.5`` and section numbers like ``1.1.2.1`` stay (the only all-single-digit addresses in
  use are public resolvers such as ``8.8.4.4``, which are no personal data); a version number that is also a
  valid address (``10.2.3.4``) cannot be told apart and is redacted.
* IPv6: the full 8-group form, and the ``::`` compressed forms with at least 3 groups (``2001:db8::1``).
  Shorter compressed forms (``fe80::1``, ``::1``) are left alone, because ``a::b`` and ``x[1::2]`` are code.
* phone: international numbers starting with ``+`` and a country code (``+44 20 7946 0958``), North American
  numbers with their area code (``(415) 555-0132``, ``(604)-822-2510``, ``415-555-0132``, ``415.555.0132``)
  and European national numbers starting with 0 in space-separated groups (``06 12 34 56 78``) or
  ``0AAA/NNNNNN``. Bare digit runs
  (ids, ISBNs), years, dates, decimals and 7-digit local numbers are left alone: they cannot be told from
  phone numbers without context, and redacting them would damage far more text than it protects.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from gristmill.stages.base import StageOutput, StageParams, StreamingStage
from gristmill.stages.clean._text import on_rows, source_mask, text_array, with_text

# Letters and digits that can be glued to an address: ASCII and the Latin-1/Latin Extended letters (so
# "prénom@x.fr" does not lose its "pré"). Not \pL: CJK text writes addresses right after a word without a
# space ("联系abc@qq.com谢谢"), so a Han character must count as a boundary; and RE2 compiles \pL classes
# ~50x slower, a cost Arrow pays on every call.
_ALNUM = r"A-Za-z0-9\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{24F}"
_WORD = _ALNUM + "_"
EMAIL = (
    rf"(^|[^{_WORD}.%+-])"
    rf"([{_ALNUM}](?:[{_WORD}.%+-]*[{_WORD}%+-])?@(?:[{_ALNUM}](?:[{_ALNUM}-]*[{_ALNUM}])?\.)+[A-Za-z]{{2,}})"
    rf"($|[^{_WORD}@-])"
)

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_MULTI_DIGIT_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9])"


def _ipv4_body() -> str:
    # At least one octet of two or more digits: "1.1.2.1" is a section number far more often than an address
    # (the all-single-digit addresses are a handful of public resolvers, not personal data).
    forms = [
        r"(?:[0-9]\.){%d}%s(?:\.%s){%d}" % (first, _MULTI_DIGIT_OCTET, _OCTET, 3 - first) for first in range(4)
    ]
    return "(" + "|".join(forms) + ")"


IPV4 = (
    rf"(^|[^{_WORD}.])"
    + _ipv4_body()
    # After it: end, a character that is no letter/digit/dot, or a dot that ends the sentence.
    + rf"($|[^{_WORD}.]|\.(?:$|[^{_WORD}]))"
)


def _ipv6_body() -> str:
    h = "[0-9A-Fa-f]{1,4}"
    forms = [
        f"{h}(?::{h}){{7}}",  # full form
        # "::" forms with at least 3 groups: 2+ before it, 1 before and 2+ after, or 3+ after. (The upper bound
        # of 7 groups is not enforced: a longer hex-colon run is no address either, but no prose.)
        f"{h}:{h}(?::{h}){{0,5}}::(?:{h}(?::{h}){{0,4}})?",
        f"{h}::{h}:{h}(?::{h}){{0,4}}",
        f"::{h}:{h}:{h}(?::{h}){{0,4}}",
    ]
    return "(" + "|".join(forms) + ")"


IPV6 = rf"(^|[^{_WORD}:.])" + _ipv6_body() + rf"($|[^{_WORD}:]|:(?:$|[^{_WORD}:]))"

_PHONE_BODY = "|".join(
    [
        # International: + country code, then 2-5 digit groups (an optional (area) group first).
        r"\+[1-9][0-9]{0,2}(?:[ .-]?\([0-9]{1,4}\))?(?:[ .-]?[0-9]{1,4})(?:[ .-]?[0-9]{2,5}){2,4}",
        # North American: (AAA) NNN-NNNN, AAA-NNN-NNNN, AAA.NNN.NNNN, AAA NNN NNNN (one separator style).
        r"\([2-9][0-9]{2}\)[ -]?[0-9]{3}[-. ][0-9]{4}",
        r"[2-9][0-9]{2}-[0-9]{3}-[0-9]{4}",
        r"[2-9][0-9]{2}\.[0-9]{3}\.[0-9]{4}",
        r"[2-9][0-9]{2} [0-9]{3} [0-9]{4}",
        # European national: 0 + area code, then space-separated groups, or 0AAA/NNNNNN and 0AAA-NNNNNN.
        r"0[1-9][0-9]{0,3}(?: [0-9]{2,4}){2,4}",
        r"0[1-9][0-9]{1,4}[/-][0-9]{5,8}",
    ]
)
PHONE = (
    rf"(^|[^{_WORD}+./-])"
    rf"({_PHONE_BODY})"
    # After it: no further digit, letter, or a separator continuing the number (e.g. an ISBN's next group).
    rf"($|[^{_WORD}./-]|[./-](?:$|[^{_WORD}]))"
)


def rewrite(placeholder: str) -> str:
    """RE2 rewrite string that keeps the captured context around the placeholder."""
    return r"\1" + placeholder.replace("\\", "\\\\") + r"\3"


def redact(text: pa.Array, pattern: str, placeholder: str, precheck: pa.Array | None = None) -> pa.Array:
    """Replace every match of ``pattern`` (groups: before, match, after) in the rows that can contain one."""
    if precheck is None:
        precheck = pc.match_substring_regex(text, pattern)
    candidates = pc.fill_null(precheck, False)

    def replace(rows: pa.Array) -> pa.Array:
        # Twice: a separator consumed as one match's "after" cannot be the next match's "before".
        once = pc.replace_substring_regex(rows, pattern, rewrite(placeholder))
        return pc.replace_substring_regex(once, pattern, rewrite(placeholder))

    return on_rows(text, candidates, replace)


class Pii(StreamingStage):
    """Redact e-mail addresses, IP addresses and phone numbers in ``text`` (each kind switchable)."""

    name = "clean.pii_v1"

    class Params(StageParams):
        emails: bool = True
        ipv4: bool = True
        ipv6: bool = True
        phones: bool = True
        email_placeholder: str = "<EMAIL>"
        ip_placeholder: str = "<IP>"
        phone_placeholder: str = "<PHONE>"
        # Mixture sources the stage applies to; None = all. Rows of other sources pass through untouched.
        sources: list[str] | None = None

    def process(self, table: pa.Table) -> StageOutput:
        if table.num_rows == 0:
            return StageOutput(table, None)
        applies = source_mask(table, self.params.sources)
        text = on_rows(text_array(table), applies, self.redact_all)
        return StageOutput(with_text(table, text), None)

    def redact_all(self, text: pa.Array) -> pa.Array:
        """One RE2 pass over the batch finds the rows that may hold any enabled kind (a few percent of web
        text); the per-kind passes then run on those rows only."""
        p = self.params
        kinds = [
            (p.emails, EMAIL, p.email_placeholder, "@"),
            # Addresses before phones, whose digit groups could otherwise eat parts of an address.
            (p.ipv6, IPV6, p.ip_placeholder, IPV6),
            (p.ipv4, IPV4, p.ip_placeholder, IPV4),
            (p.phones, PHONE, p.phone_placeholder, PHONE),
        ]
        enabled = [(pattern, placeholder, cue) for on, pattern, placeholder, cue in kinds if on]
        if not enabled:
            return text
        any_cue = "|".join(f"(?:{cue})" for _, _, cue in enabled)

        def redact_kinds(rows: pa.Array) -> pa.Array:
            for pattern, placeholder, cue in enabled:
                rows = redact(rows, pattern, placeholder, precheck=pc.match_substring_regex(rows, cue))
            return rows

        return on_rows(text, pc.fill_null(pc.match_substring_regex(text, any_cue), False), redact_kinds)
