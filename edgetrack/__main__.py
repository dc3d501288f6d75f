import sys

from edgetrack.cli import main

sys.exit(main())
