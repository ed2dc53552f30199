"""ticketguard: fraud, risk and security layer for an NFT ticketing platform."""

import os

# issue 13: XGBoost's OpenMP threads wait passively between parallel regions. The default (spinning) makes a
# 2-thread fit 4.6x slower than a 1-thread one on a machine whose cores are busy with other work (measured:
# 18.4 s against 4.0 s for the same 100 rounds at load 8 on 2 cores; passive: 5.6 s). Read by libgomp when
# it loads, so it is set before anything imports xgboost; an explicit OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
