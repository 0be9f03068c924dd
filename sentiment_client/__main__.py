"""`python -m sentiment_client ...` is the `sentiment` command without installing anything."""

import sys

from sentiment_client.cli import main

sys.exit(main())
