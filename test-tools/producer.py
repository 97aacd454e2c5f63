#!/usr/bin/env python3
"""The published producer's command line: `orchestrator send` under its old name.

python3 test-tools/producer.py --queue-url <MASTER_QUEUE_URL> --count 30 --interval 0.2
"""

import sys

try:  # importing boto3 and pydantic takes a moment: Ctrl-C then is not a traceback either
    from orchestrator.cli.send import run_as_script
except KeyboardInterrupt:
    sys.stderr.write("error: interrupted\n")
    sys.exit(130)  # ExitCode.INTERRUPTED: the import that would name it is what was stopped

if __name__ == "__main__":
    sys.exit(run_as_script("producer.py"))
