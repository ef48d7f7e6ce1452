import sys

from proofs_checks.cli import main

sys.exit(main())
