"""``python -m services.permits``."""

import sys

from services.common.service import service_main
from services.permits.server import build_server

if __name__ == "__main__":
    sys.exit(service_main("permits", build_server))
