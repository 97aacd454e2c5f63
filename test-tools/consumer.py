#!/usr/bin/env python3
"""The published consumer's command line: `orchestrator consume` under its old name.

python3 test-tools/consumer.py --queue-us-east-1 <URL> --queue-us-west-2 <URL> --max-messages 30
"""

import sys

try:  # importing boto3 takes a moment: Ctrl-C then is not a traceback either
    from orchestrator.cli.consume import run_as_script
except KeyboardInterrupt:
    sys.stderr.write("error: interrupted\n")
    sys.exit(130)  # ExitCode.INTERRUPTED: the import that would name it is what was stopped

if __name__ == "__main__":
    sys.exit(run_as_script("consumer.py"))
