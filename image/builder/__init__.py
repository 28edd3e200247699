"""The appliance image builder behind `make image`, `make vm` and `make flash`.

Standard library only: it runs with the build host's own Python 3 before any venv exists.
The requirements.lock format is portcullis-vendor's (``portcullis_vendor.pins``, standard
library only too), which checks app bundles against the same lock: it is imported from
this checkout's update-server/.
"""

import sys
from pathlib import Path

_UPDATE_SERVER = str(Path(__file__).resolve().parents[2] / "update-server")
if _UPDATE_SERVER not in sys.path:
    sys.path.append(_UPDATE_SERVER)
