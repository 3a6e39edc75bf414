"""``python3 -m confluo.lab.node --install DIR`` (in a checkout) runs the node program like the archive's pyz."""

import sys

from .program import main

sys.exit(main())
