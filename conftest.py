"""Settings for the whole test run, notebooks included.

Notebook kernels started by nbval inherit this process's environment, so
setting it here, before any kernel starts, keeps progress bars out of the
compared outputs (they carry timings and widget ids that change every run).
"""

import os

os.environ["OTYSPD_PROGRESS"] = "0"
os.environ["OTYSPD_UNDER_TEST"] = "1"
