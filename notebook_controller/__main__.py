import sys

from notebook_controller.cli import main

sys.exit(main())
