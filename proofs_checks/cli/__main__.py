import sys

from ncverify.proofs_checks.cli import main

sys.exit(main())
