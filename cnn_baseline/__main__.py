import sys

from cnn_baseline.cli import main

sys.exit(main())
