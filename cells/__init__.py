"""seqcast cells package."""
