from portcullis.cli.main import main

raise SystemExit(main())
