import sys

from mfid.cli import main

sys.exit(main())
