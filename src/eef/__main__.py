import sys

from eef.cli import main

sys.exit(main())
