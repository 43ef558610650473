from stafett_consent.app import main

raise SystemExit(main())
