"""Tokenization: training the byte-level BPE tokenizer (``tokenizer.train_bbpe_v1``) and encoding documents
with it (``tokenize.bbpe_v1``). Importing this package registers both stages."""

import gristmill.stages.tokenize.encode  # noqa: F401
import gristmill.stages.tokenize.train  # noqa: F401
