"""``python -m services.residence``."""

import sys

from services.common.service import service_main
from services.residence.server import build_server

if __name__ == "__main__":
    sys.exit(service_main("residence", build_server))
