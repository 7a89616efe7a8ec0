"""Ingest: read any common data format, infer types and a contract, write a data set YAML."""
