"""`python demo/run.py [options]` = `tb-batchavg demo [options]`, from a checkout.

The training code lives in the package (`tb_batchavg/demo_runs.py`) so that the console script
works from an installed wheel; this wrapper only puts the checkout on the path. The tab appears
only if the plugin is installed in this Python (`pip install -e ".[tf]"`).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tb_batchavg.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
