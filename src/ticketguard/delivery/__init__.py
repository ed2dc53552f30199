"""Delivery: everything that leaves ticketguard over the network (review callbacks, alert notifications)
goes through one outbox — written in the same transaction as the change it reports, sent at least once by
the worker with retries and backoff, each message carrying an idempotency key."""
