#!/usr/bin/env python3
"""The published producer's command line: `orchestrator send` under its old name.

python3 test-tools/producer.py --queue-url <MASTER_QUEUE_URL> --count 30 --interval 0.2
"""

import sys

from orchestrator.cli.send import run_as_script

if __name__ == "__main__":
    sys.exit(run_as_script("producer.py"))
