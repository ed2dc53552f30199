"""Named jobs, their one schedule, the worker that runs it, and the record of every run."""
