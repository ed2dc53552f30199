"""ticketguard: fraud, risk and security layer for an NFT ticketing platform."""

__version__ = "0.1.0"
