"""``python -m services.identity``."""

import sys

from services.common.service import service_main
from services.identity.server import build_server

if __name__ == "__main__":
    sys.exit(service_main("identity", build_server))
