import sys

from orchestrator.deploy.cli import main

sys.exit(main())
