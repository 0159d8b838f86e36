"""`python -m service.cloud [--store URL] [--port N] [--dev]`: serve the cloud (the flags of `eibert cloud`)."""

from service.cloud.cli import main

raise SystemExit(main())
