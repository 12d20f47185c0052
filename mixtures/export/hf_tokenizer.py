"""The run's tokenizer as a Hugging Face tokenizer folder.

``tokenizer.json`` is the run's file byte for byte (its sha256 checked against the manifest's);
``tokenizer_config.json`` and ``special_tokens_map.json`` make ``transformers`` load it as a
``PreTrainedTokenizerFast`` with the bos/eos/pad tokens of the manifest, no added bos/eos (the packer
places the separators), no space clean-up on decode, and special-token strings inside a text encoded as
plain text when the run encoded them so (``split_special_tokens``; the tokenize stage's default). A
``tokenizers.Tokenizer.from_file`` user sets ``encode_special_tokens = True`` for the same (``tokenizers``
keeps that switch out of ``tokenizer.json``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gristmill.core.layout import TOKENIZER_FILE
from gristmill.core.storage import Location
from gristmill.mixtures.export.rows import PackedRun
from gristmill.stages.base import require

CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"


def special_tokens(tokenizer_json: str, reference: dict[str, Any]) -> dict[str, str]:
    """bos/eos/pad token strings for the ids in the manifest's tokenizer reference."""
    tok = require("tokenizers", "tokenize").Tokenizer.from_str(tokenizer_json)
    names = {}
    for role in ("bos", "eos", "pad"):
        token_id = reference.get(f"{role}_id", reference["separator_id"] if role != "pad" else reference["pad_id"])
        token = tok.id_to_token(int(token_id))
        if token is None:
            raise ValueError(f"manifest.json: tokenizer {role}_id {token_id} is not in {reference['path']}")
        names[f"{role}_token"] = token
    return names


def write_hf_tokenizer(run: PackedRun, out: Location, split_special_tokens: bool = True) -> dict[str, Any]:
    """Write the folder; ``split_special_tokens``: special-token strings in a text are plain text (as the
    tokenize stage's ``parse_special_tokens: false``)."""
    reference = run.tokenizer
    source = run.tokenizer_file()
    data = source.read_bytes()
    if hashlib.sha256(data).hexdigest() != reference["sha256"]:
        raise ValueError(f"{source}: sha256 differs from manifest.json's {reference['sha256'][:16]}...: it is not "
                         "the tokenizer the shards were made with")
    specials = special_tokens(data.decode("utf-8"), reference)
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **specials,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "split_special_tokens": split_special_tokens,
        "model_max_length": run.seq_len,
    }
    (out / TOKENIZER_FILE).write_bytes(data)
    (out / SPECIAL_TOKENS_FILE).write_text(json.dumps(specials, indent=2, sort_keys=True) + "\n")
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return {"files": [TOKENIZER_FILE, CONFIG_FILE, SPECIAL_TOKENS_FILE], "sha256": reference["sha256"], **specials}
