"""gristmill's language codes: what the ``lang`` column holds and what a YAML file may name.

A code is ISO 639-1 where the language has one, else ISO 639-3 (or, for the two labels with neither, the code the
model's Wikipedia uses: ``eml``, ``nah``). The set is the 176 languages of fastText's ``lid.176`` model, whose labels
are Wikipedia language codes; four of them are not what ISO means by the same code and are mapped
(``LID176_LABELS``):

* ``no`` is trained on no.wikipedia, which is written in Bokmål (Nynorsk is its own label, ``nn``): ``nb``.
* ``sh`` is Serbo-Croatian, whose ISO 639-1 code is deprecated: ``hbs`` (its 639-3 macrolanguage code).
* ``als`` is Alemannic on Wikipedia but Tosk Albanian in ISO 639-3: ``gsw``. ``als`` is therefore not accepted
  as an alias (it would mean one language to a Wikipedia user and another to an ISO one).
* ``bh`` is bh.wikipedia, written in Bhojpuri (``bh`` is the ISO 639-1 collective code "Bihari"): ``bho``.

Accepted in YAML for a code (``to_code``), case-insensitively: the code itself, its ISO 639-3 and 639-2/B codes
(``deu``, ``ger``), deprecated ISO 639-1 codes (``iw``, ``in``, ``ji``, ``jw``, ``mo``, ``sh``), the model's own
labels (``no``, ``bh``), the main individual language of a macrolanguage that lid.176 labels as a whole (``cmn``,
``arb``, ``pes``, ...), and a BCP 47 tag or a GlotLID label by its language part (``zh-Hans``, ``pt_BR``,
``eng_Latn``).

The table of names and ISO 639-3/639-2 codes was taken from the iso-codes 4.15 tables (ISO 639-2, 639-3).
"""

from __future__ import annotations

import re

LANG_COLUMN = "lang"

# The model's labels that are not the gristmill code of their language (see the module docstring).
LID176_LABELS: dict[str, str] = {"als": "gsw", "bh": "bho", "no": "nb", "sh": "hbs"}

# code -> English name (ISO 639 reference name, shortened where it has a "(macrolanguage)" suffix).
LANGUAGES: dict[str, str] = {
    "af": "Afrikaans", "am": "Amharic", "an": "Aragonese", "ar": "Arabic", "arz": "Egyptian Arabic", "as": "Assamese",
    "ast": "Asturian", "av": "Avaric", "az": "Azerbaijani", "azb": "South Azerbaijani", "ba": "Bashkir",
    "bar": "Bavarian", "bcl": "Central Bikol", "be": "Belarusian", "bg": "Bulgarian", "bho": "Bhojpuri",
    "bn": "Bengali", "bo": "Tibetan", "bpy": "Bishnupriya", "br": "Breton", "bs": "Bosnian", "bxr": "Russia Buriat",
    "ca": "Catalan", "cbk": "Chavacano", "ce": "Chechen", "ceb": "Cebuano", "ckb": "Central Kurdish",
    "co": "Corsican", "cs": "Czech", "cv": "Chuvash", "cy": "Welsh", "da": "Danish", "de": "German", "diq": "Dimli",
    "dsb": "Lower Sorbian", "dty": "Dotyali", "dv": "Dhivehi", "el": "Modern Greek (1453-)",
    "eml": "Emilian-Romagnol", "en": "English", "eo": "Esperanto", "es": "Spanish", "et": "Estonian", "eu": "Basque",
    "fa": "Persian", "fi": "Finnish", "fr": "French", "frr": "Northern Frisian", "fy": "Western Frisian",
    "ga": "Irish", "gd": "Scottish Gaelic", "gl": "Galician", "gn": "Guarani", "gom": "Goan Konkani",
    "gsw": "Alemannic", "gu": "Gujarati", "gv": "Manx", "hbs": "Serbo-Croatian", "he": "Hebrew", "hi": "Hindi",
    "hif": "Fiji Hindi", "hr": "Croatian", "hsb": "Upper Sorbian", "ht": "Haitian", "hu": "Hungarian",
    "hy": "Armenian", "ia": "Interlingua (International Auxiliary Language Association)", "id": "Indonesian",
    "ie": "Interlingue", "ilo": "Iloko", "io": "Ido", "is": "Icelandic", "it": "Italian", "ja": "Japanese",
    "jbo": "Lojban", "jv": "Javanese", "ka": "Georgian", "kk": "Kazakh", "km": "Khmer", "kn": "Kannada",
    "ko": "Korean", "krc": "Karachay-Balkar", "ku": "Kurdish", "kv": "Komi", "kw": "Cornish", "ky": "Kirghiz",
    "la": "Latin", "lb": "Luxembourgish", "lez": "Lezghian", "li": "Limburgan", "lmo": "Lombard", "lo": "Lao",
    "lrc": "Northern Luri", "lt": "Lithuanian", "lv": "Latvian", "mai": "Maithili", "mg": "Malagasy",
    "mhr": "Eastern Mari", "min": "Minangkabau", "mk": "Macedonian", "ml": "Malayalam", "mn": "Mongolian",
    "mr": "Marathi", "mrj": "Western Mari", "ms": "Malay", "mt": "Maltese", "mwl": "Mirandese", "my": "Burmese",
    "myv": "Erzya", "mzn": "Mazanderani", "nah": "Nahuatl", "nap": "Neapolitan", "nb": "Norwegian Bokmål",
    "nds": "Low German", "ne": "Nepali", "new": "Newari", "nl": "Dutch", "nn": "Norwegian Nynorsk",
    "oc": "Occitan (post 1500)", "or": "Oriya", "os": "Ossetian", "pa": "Panjabi", "pam": "Pampanga",
    "pfl": "Pfaelzisch", "pl": "Polish", "pms": "Piemontese", "pnb": "Western Panjabi", "ps": "Pushto",
    "pt": "Portuguese", "qu": "Quechua", "rm": "Romansh", "ro": "Romanian", "ru": "Russian", "rue": "Rusyn",
    "sa": "Sanskrit", "sah": "Yakut", "sc": "Sardinian", "scn": "Sicilian", "sco": "Scots", "sd": "Sindhi",
    "si": "Sinhala", "sk": "Slovak", "sl": "Slovenian", "so": "Somali", "sq": "Albanian", "sr": "Serbian",
    "su": "Sundanese", "sv": "Swedish", "sw": "Swahili", "ta": "Tamil", "te": "Telugu", "tg": "Tajik", "th": "Thai",
    "tk": "Turkmen", "tl": "Tagalog", "tr": "Turkish", "tt": "Tatar", "tyv": "Tuvinian", "ug": "Uighur",
    "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek", "vec": "Venetian", "vep": "Veps", "vi": "Vietnamese",
    "vls": "Vlaams", "vo": "Volapük", "wa": "Walloon", "war": "Waray (Philippines)", "wuu": "Wu Chinese",
    "xal": "Kalmyk", "xmf": "Mingrelian", "yi": "Yiddish", "yo": "Yoruba", "yue": "Yue Chinese", "zh": "Chinese",
}

# ISO 639-3 and 639-2/B codes of the languages above (iso-codes tables).
_ISO_639_2_3: dict[str, str] = {
    "afr": "af", "alb": "sq", "amh": "am", "ara": "ar", "arg": "an", "arm": "hy", "asm": "as", "ava": "av",
    "aze": "az", "bak": "ba", "baq": "eu", "bel": "be", "ben": "bn", "bod": "bo", "bos": "bs", "bre": "br",
    "bul": "bg", "bur": "my", "cat": "ca", "ces": "cs", "che": "ce", "chi": "zh", "chv": "cv", "cor": "kw",
    "cos": "co", "cym": "cy", "cze": "cs", "dan": "da", "deu": "de", "div": "dv", "dut": "nl", "ell": "el",
    "eng": "en", "epo": "eo", "est": "et", "eus": "eu", "fas": "fa", "fin": "fi", "fra": "fr", "fre": "fr",
    "fry": "fy", "geo": "ka", "ger": "de", "gla": "gd", "gle": "ga", "glg": "gl", "glv": "gv", "gre": "el",
    "grn": "gn", "guj": "gu", "hat": "ht", "heb": "he", "hin": "hi", "hrv": "hr", "hun": "hu", "hye": "hy",
    "ice": "is", "ido": "io", "ile": "ie", "ina": "ia", "ind": "id", "isl": "is", "ita": "it", "jav": "jv",
    "jpn": "ja", "kan": "kn", "kat": "ka", "kaz": "kk", "khm": "km", "kir": "ky", "kom": "kv", "kor": "ko",
    "kur": "ku", "lao": "lo", "lat": "la", "lav": "lv", "lim": "li", "lit": "lt", "ltz": "lb", "mac": "mk",
    "mal": "ml", "mar": "mr", "may": "ms", "mkd": "mk", "mlg": "mg", "mlt": "mt", "mon": "mn", "msa": "ms",
    "mya": "my", "nep": "ne", "nld": "nl", "nno": "nn", "nob": "nb", "oci": "oc", "ori": "or", "oss": "os",
    "pan": "pa", "per": "fa", "pol": "pl", "por": "pt", "pus": "ps", "que": "qu", "roh": "rm", "ron": "ro",
    "rum": "ro", "rus": "ru", "san": "sa", "sin": "si", "slk": "sk", "slo": "sk", "slv": "sl", "snd": "sd",
    "som": "so", "spa": "es", "sqi": "sq", "srd": "sc", "srp": "sr", "sun": "su", "swa": "sw", "swe": "sv",
    "tam": "ta", "tat": "tt", "tel": "te", "tgk": "tg", "tgl": "tl", "tha": "th", "tib": "bo", "tuk": "tk",
    "tur": "tr", "uig": "ug", "ukr": "uk", "urd": "ur", "uzb": "uz", "vie": "vi", "vol": "vo", "wel": "cy",
    "wln": "wa", "yid": "yi", "yor": "yo", "zho": "zh",
}

_OTHER_ALIASES: dict[str, str] = {
    # deprecated ISO 639-1 codes, still written by Java's Locale and older tools
    "iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro", "sh": "hbs",
    # the model's own labels where gristmill's code differs (``als`` excluded, see the module docstring)
    "no": "nb", "nor": "nb", "bh": "bho",
    # the main individual language of a macrolanguage the model labels as a whole
    "cmn": "zh", "arb": "ar", "pes": "fa", "zsm": "ms", "swh": "sw", "ekk": "et", "lvs": "lv", "khk": "mn",
    "npi": "ne", "ory": "or", "uzn": "uz", "ydd": "yi", "azj": "az", "plt": "mg", "gug": "gn", "kpv": "kv",
    "kmr": "ku", "pbu": "ps", "fil": "tl",
}

ALIASES: dict[str, str] = {**_ISO_639_2_3, **_OTHER_ALIASES}

# Codes refused with an explanation rather than the plain "unknown code" message.
_AMBIGUOUS = {
    "als": "'als' is Alemannic to Wikipedia and fastText but Tosk Albanian in ISO 639-3: write gsw (Alemannic) "
           "or sq (Albanian)",
}

_SUBTAG = re.compile(r"[-_]")


class LanguageCodeError(ValueError):
    """A value where a language code is expected that is none of gristmill's codes or their aliases."""


def known_codes() -> str:
    return ", ".join(sorted(LANGUAGES))


def to_code(value: object) -> str:
    """gristmill's code for a code, an alias or a BCP 47 / GlotLID tag; LanguageCodeError if it names none.

    YAML 1.1 reads an unquoted ``no`` as the boolean false; where a language code is expected nothing else can
    have been meant (``false`` and ``off`` are not languages), so false is read as ``no`` (Norwegian, ``nb``).
    True (``yes``, ``on``, ``true``) is refused with the advice to quote.
    """
    if value is False:
        value = "no"
    if not isinstance(value, str):
        hint = " (YAML reads unquoted yes/on/true as a boolean: quote the code)" if value is True else ""
        raise LanguageCodeError(f"{value!r} is not a language code{hint}; known codes: {known_codes()}")
    key = value.strip().lower()
    if key in LANGUAGES:
        return key
    if key in ALIASES:
        return ALIASES[key]
    if key in _AMBIGUOUS:
        raise LanguageCodeError(_AMBIGUOUS[key])
    primary = _SUBTAG.split(key, 1)[0]
    if primary != key and primary not in _AMBIGUOUS:
        if primary in LANGUAGES:
            return primary
        if primary in ALIASES:
            return ALIASES[primary]
    raise LanguageCodeError(f"unknown language code {value!r}; known codes: {known_codes()} (and their ISO 639-3 "
                            "codes, deprecated ISO 639-1 codes and BCP 47 tags, e.g. deu, iw, zh-Hans)")


def model_label_to_code(label: str) -> str | None:
    """gristmill's code for a LID model's label (lid.176: ``no`` -> ``nb``; GlotLID: ``eng_Latn`` -> ``en``), or
    None when the label names no language of the table."""
    if label in LID176_LABELS:
        return LID176_LABELS[label]
    try:
        return to_code(label)
    except LanguageCodeError:
        return None
