from speakerd.cli import main

raise SystemExit(main())
