import sys

from reingest_assets.cli.app import main

sys.exit(main())
