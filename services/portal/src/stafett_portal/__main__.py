from stafett_portal.app import main

raise SystemExit(main())
