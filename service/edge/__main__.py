"""`python -m service.edge --bundle DIR ...`: serve one edge node (the flags of `eibert edge`)."""

from service.edge.cli import main

raise SystemExit(main())
