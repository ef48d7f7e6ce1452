"""ncverify: symbolic-plus-numeric verification of neural-collapse theorems (public API: see below)."""
__version__ = "0.2.0"
