import sys

from orchestrator.worker.cli import COMMAND

sys.exit(COMMAND.main(sys.argv[1:]))
