"""seqcast serving package."""
