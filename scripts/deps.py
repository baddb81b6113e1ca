#!/usr/bin/env python3
"""Print the project's pip requirements, one per line, without openwakeword.

Why: openwakeword 0.5.1 (the last release that ships its models) declares tflite-runtime, which
has no wheel for Python 3.12+ and which speakerd never uses (it runs the ONNX models). The install
scripts therefore install openwakeword with --no-deps and everything else from this list.
"""

import sys
import tomllib
from pathlib import Path

root = Path(__file__).resolve().parent.parent
project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
reqs = list(project["dependencies"])
for extra in sys.argv[1:]:
    reqs += project.get("optional-dependencies", {}).get(extra, [])
for req in reqs:
    if req.replace(" ", "").lower().startswith("openwakeword"):
        continue
    print(req)
