"""The kit every dataset family stands on: its description, its command's shared parts, its chat rows and their checks, spilling rows to disk."""
