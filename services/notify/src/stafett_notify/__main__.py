from stafett_notify.app import main

raise SystemExit(main())
