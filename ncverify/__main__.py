"""``python -m ncverify``: the command line (the same as the ``ncverify`` script)."""
import sys

from ncverify.proofs_checks.cli import main

sys.exit(main())
