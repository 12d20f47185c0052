"""clean.pii_v1 (stages/clean/pii.py): e-mail, IP and phone redaction, and what is deliberately left alone."""

from __future__ import annotations

import pytest

from gristmill.stages.clean.pii import Pii

from .conftest import lines_of, run

REDACTED = [
    ("Mail john.doe+news@example.co.uk today.", "Mail <EMAIL> today."),
    ("Écrivez à prénom.nom@eigsi.fr, merci.", "Écrivez à <EMAIL>, merci."),
    ("<a href=\"mailto:Jane_D@mail.example.org\">", "<a href=\"mailto:<EMAIL>\">"),
    ("server 192.168.0.1, dns 10.0.0.2 172.16.4.1.", "server <IP>, dns <IP> <IP>."),
    ("open http://10.0.0.1:8080/admin", "open http://<IP>:8080/admin"),
    ("host 2001:db8::1 or 2001:0db8:85a3:0000:0000:8a2e:0370:7334.", "host <IP> or <IP>."),
    ("call +1 415-555-0132 now", "call <PHONE> now"),
    ("ring (415) 555-0132 or 415.555.0132 or 415-555-0132", "ring <PHONE> or <PHONE> or <PHONE>"),
    ("UK +44 20 7946 0958, FR +33 6 12 34 56 78.", "UK <PHONE>, FR <PHONE>."),
    ("tél. 06 12 34 56 78 ou 030/1234567.", "tél. <PHONE> ou <PHONE>."),
    # CJK text puts addresses right next to words: a Han character is a boundary, not part of the address.
    ("联系abc@qq.com谢谢", "联系<EMAIL>谢谢"),
    ("IP地址192.168.1.1。电话：+86 10 1234 5678。", "IP地址<IP>。电话：<PHONE>。"),
]

LEFT_ALONE = [
    "Follow @gristmill and write to user@localhost; @property decorates it.",
    "version 1.2.3.4.5, v1.2.3.4, 10.0.0.256, 01.02.03.04 and section 1.1.2.1 of the manual",
    "std::vector<int> a; x[1::2]; a::b; fe80::1 time 12:30:45 MAC 00:1A:2B:3C:4D:5E",
    "ISBN 978-3-16-148410-0 and 978-316-1484-100, in 2020, 1990-2000, 3,000,000 people, 12.05.2020",
    "pi is 3.14159, call 555-1234 locally, order id 4155550132, price $1,299.99",
]


@pytest.mark.parametrize("text,expected", REDACTED, ids=[e[:24] for _, e in REDACTED])
def test_pii_is_redacted(text, expected):
    assert run(Pii(), [text])[0] == [expected]


@pytest.mark.parametrize("text", LEFT_ALONE, ids=[t[:24] for t in LEFT_ALONE])
def test_non_pii_is_left_alone(text):
    assert run(Pii(), [text])[0] == [text]


def test_real_lines_with_pii():
    lines = lines_of("pii.txt")  # real sentences of the Leipzig corpora that carry addresses and numbers
    out, reasons = run(Pii(), lines)
    assert reasons == [None] * len(lines)
    joined = "\n".join(out)
    for secret in ["ingo.zimmermann@wtal.de", "195.214.4.226", "65.95.82.91", "(604)-822-2510", "0549/882165",
                   "0549-882914", "prénom.nom.promoNN@eigsi.fr", "uni@donga.com", "sapodesporto@sapo.pt"]:
        assert secret not in joined
    assert "pré<EMAIL>" not in joined
    assert not any("@" in line and "." in line.split("@")[1][:20] for line in out)
    # The rest of each line is untouched.
    assert out[1] == (
        "Diese muß <IP> lauten Durch Klicken auf Comm Setup kommt man zum nächsten zu konfigurierenden Fenster."
    )


def test_real_text_without_pii_is_unchanged(real_texts):
    texts = [line for lines in real_texts.values() for line in lines] + lines_of("code_colorsys.py.txt")
    out = run(Pii(), texts)[0]
    changed = [(before, after) for before, after in zip(texts, out) if before != after]
    # 600 real sentences and a code file: the one line that changes is the one with an address in it.
    assert changed == [(
        "For more information about this website, please contact NSAC_info@nsac.ns.ca).",
        "For more information about this website, please contact <EMAIL>).",
    )]


@pytest.mark.parametrize(
    "switch,kept",
    [("emails", "a@example.com"), ("ipv4", "10.1.2.3"), ("ipv6", "2001:db8::1"), ("phones", "+1 415-555-0132")],
)
def test_each_kind_can_be_switched_off(switch, kept):
    text = "a@example.com 10.1.2.3 2001:db8::1 +1 415-555-0132"
    out = run(Pii({switch: False}), [text])[0][0]
    assert kept in out
    assert out.count("<") == 3


def test_placeholders_are_configurable_and_literal():
    params = {"email_placeholder": "[mail \\1 $1]", "ip_placeholder": "", "phone_placeholder": "☎"}
    out = run(Pii(params), ["a@example.com, 10.1.2.3 and +1 415-555-0132."])[0]
    assert out == ["[mail \\1 $1],  and ☎."]


def test_sources_limit_the_rows_touched():
    text = "mail a@example.com"
    out = run(Pii({"sources": ["common_crawl"]}), [text, text], sources=["common_crawl", "github"])[0]
    assert out == ["mail <EMAIL>", text]


def test_nulls_and_empty_strings_pass():
    assert run(Pii(), [None, "", "a@example.com"])[0] == [None, "", "<EMAIL>"]
