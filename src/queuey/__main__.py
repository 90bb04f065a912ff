from queuey.cli import main

raise SystemExit(main())
