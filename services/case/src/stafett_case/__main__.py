from stafett_case.app import main

raise SystemExit(main())
