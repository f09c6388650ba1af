import sys

from openface_runner.cli import main

sys.exit(main())
