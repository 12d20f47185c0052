"""Tokenization: training the byte-level BPE tokenizer (``tokenizer.train_bbpe_v1``) and encoding documents
with it (``tokenize.bbpe_v1``). This package holds both stages."""
