import sys

from t2i.cli import main

sys.exit(main())
