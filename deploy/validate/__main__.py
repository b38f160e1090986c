"""``python -m deploy.validate`` (``make deploy-lint``)."""

import sys

from deploy.validate import main

sys.exit(main())
