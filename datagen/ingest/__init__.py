"""The first stage: raw files read, cleaned, k-cored, split leave-one-out, counted."""
