"""Mixtures: presets (llama.yaml), the ratio solver, the packer, the shard writer/reader (DESIGN.md)."""
