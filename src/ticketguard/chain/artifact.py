"""The compiled TicketNFT contract (ABI + bytecode) shipped with the package.

Built from `contracts/src/TicketNFT.sol` by `contracts/build.sh` (solc from npm); the runtime never needs
node or npm. `source_sha256` lets a test prove the artifact was rebuilt after the source last changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

ARTIFACT_NAME = "TicketNFT.json"


@dataclass(frozen=True)
class ContractArtifact:
    contract_name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    source_sha256: str
    compiler_version: str
    evm_version: str

    def event_abi(self, name: str) -> dict[str, Any]:
        for entry in self.abi:
            if entry.get("type") == "event" and entry.get("name") == name:
                return entry
        raise KeyError(f"event {name!r} not in the {self.contract_name} ABI")


@cache
def ticket_nft() -> ContractArtifact:
    raw = json.loads(
        resources.files("ticketguard.chain.artifacts").joinpath(ARTIFACT_NAME).read_text("utf-8")
    )
    return ContractArtifact(
        contract_name=raw["contractName"],
        abi=raw["abi"],
        bytecode=raw["bytecode"],
        deployed_bytecode=raw["deployedBytecode"],
        source_sha256=raw["sourceSha256"],
        compiler_version=raw["compiler"]["version"],
        evm_version=raw["compiler"]["settings"]["evmVersion"],
    )
