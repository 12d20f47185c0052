"""``clean.pii_v1``: replace e-mail addresses, IPv4/IPv6 addresses and phone numbers with placeholders.

Each kind is one RE2 pattern run with Arrow's ``replace_substring_regex`` over the batch, and only over the rows
a cheap vectorized pre-check selects (a row without "@" has no e-mail address; the other kinds are pre-checked
with their own pattern, which RE2 matches without building output). RE2 has no look-around, so each pattern
captures the character before the match (``(^|[^...])``) and after it and writes both back; a separator can
then belong to only one match, so the replacement runs a second time to catch back-to-back addresses
("1.1.1.1 8.8.8.8").

What is and is not redacted (choices, so the rules stay predictable):

* e-mail: ``local@domain.tld`` with a 2+ letter TLD, letters of any script; ``@handles``, ``user@localhost`` and decorators are left.
  File names like ``icon@2x.png`` look exactly like addresses and are redacted too.
* IPv4: four dot-separated octets 0-255 without leading zeros, at least one of them with two or more digits,
  not glued to a letter, digit or dot on either side. So ``1.2.3.256``, ``01.02.03.04``, ``v1.2.3.4``, the
  version ``1.2.3.4.5`` and section numbers like ``1.1.2.1`` stay (the only all-single-digit addresses in
  use are public resolvers such as ``8.8.4.4``, which are no personal data); a version number that is also a
  valid address (``10.2.3.4``) cannot be told apart and is redacted.
* IPv6: the full 8-group form, and the ``::`` compressed forms with at least 3 groups (``2001:db8::1``).
  Shorter compressed forms (``fe80::1``, ``::1``) are left alone, because ``a::b`` and ``x[1::2]`` are code.
* phone: international numbers starting with ``+`` and a country code (``+44 20 7946 0958``), North American
  numbers with their area code (``(415) 555-0132``, ``(604)-822-2510``, ``415-555-0132``, ``415.555.0132``) and European national
  numbers starting with 0 in space-separated groups (``06 12 34 56 78``) or ``0AAA/NNNNNN``. Bare digit runs
  (ids, ISBNs), years, dates, decimals and 7-digit local numbers are left alone: they cannot be told from
  phone numbers without context, and redacting them would damage far more text than it protects.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.registry import register_stage
from stages.base import StageOutput, StageParams, StreamingStage
from stages.clean._text import on_rows, source_mask, text_array, with_text

# Letters and digits of any script (RE2's \w is ASCII only, so "prénom@x.fr" would lose its "pré").
_WORD = r"\pL\pN_"
EMAIL = (
    rf"(^|[^{_WORD}.%+-])"
    r"([\pL\pN](?:[\pL\pN._%+-]*[\pL\pN_%+-])?@(?:[\pL\pN](?:[\pL\pN-]*[\pL\pN])?\.)+\pL{2,})"
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
    forms = [f"(?:{h}:){{7}}{h}"]
    # k groups before "::" and m after, k + m between 3 and 7.
    for before in range(0, 8):
        for after in range(0, 8 - before):
            if not 3 <= before + after <= 7:
                continue
            head = f"(?:{h}:){{{before - 1}}}{h}" if before else ""
            tail = f"{h}(?::{h}){{{after - 1}}}" if after else ""
            forms.append(f"{head}::{tail}")
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


@register_stage
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
        p = self.params
        if p.emails:
            text = redact(text, EMAIL, p.email_placeholder, precheck=pc.match_substring(text, "@"))
        # Addresses before phones, whose digit groups could otherwise eat parts of an address.
        if p.ipv6:
            text = redact(text, IPV6, p.ip_placeholder)
        if p.ipv4:
            text = redact(text, IPV4, p.ip_placeholder)
        if p.phones:
            text = redact(text, PHONE, p.phone_placeholder)
        return text
