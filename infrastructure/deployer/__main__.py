from deployer.cli import main

raise SystemExit(main())
