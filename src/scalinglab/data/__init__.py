"""Corpus pipeline: sources → BPE tokenizer → token shards (train/val/extra eval sets) → window loader."""
