"""Crawl-ingest: readers for WARC/WET/JSONL/Parquet/text and HTML extraction."""
