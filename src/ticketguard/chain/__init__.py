"""The chain ETL: read the TicketNFT contract's logs, decode them, load transactions and events.

`decode` is pure (raw log dicts in, rows out); `reader` is the web3 edge behind `ChainReader`;
`repository` owns the SQL; `pipeline` owns the cursor, confirmations, reorg handling and retries.
"""
