from stafett_log.app import main

raise SystemExit(main())
