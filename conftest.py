"""Make a relative data root absolute before nbval starts kernels in book/ (another working folder)."""

import os
from pathlib import Path

if os.environ.get("WCBOOK_DATA"):
    os.environ["WCBOOK_DATA"] = str(Path(os.environ["WCBOOK_DATA"]).expanduser().resolve())
