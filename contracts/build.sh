#!/usr/bin/env bash
# Rebuild src/ticketguard/chain/artifacts/TicketNFT.json from src/TicketNFT.sol.
# Needs node 18+ and npm; installs the exact compiler and OpenZeppelin versions from package-lock.json.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
node build.mjs
