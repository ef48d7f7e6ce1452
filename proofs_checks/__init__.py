"""Verification layer: the only package that sees both ``theory`` and ``numerics``.

Holds the CLI (``ncverify``), and (later) the theorem catalogue, verdict engine and report.
"""
