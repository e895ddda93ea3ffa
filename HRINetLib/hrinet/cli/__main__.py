"""``python -m hrinet.cli``: the ``hrinet`` command."""

import sys

from hrinet.cli.app import main

sys.exit(main())
