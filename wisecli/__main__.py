"""`python -m wisecli ...` (what `torchrun ... -m wisecli` runs)."""

import sys

from wisecli.main import main

sys.exit(main())
