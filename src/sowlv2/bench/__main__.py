"""The memory child: ``python -m sowlv2.bench _memory_child JOB RESULT_PATH``."""

import json
import sys
from pathlib import Path

from .memory import memory_child

if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_memory_child":
        from ..io.sinks import atomic_write_json

        atomic_write_json(Path(sys.argv[3]), memory_child(json.loads(sys.argv[2])))
    else:
        sys.exit("usage: python -m sowlv2.bench _memory_child JOB RESULT_PATH (use `sowlv2 bench` to benchmark)")
