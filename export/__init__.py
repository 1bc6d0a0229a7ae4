"""seqcast export package."""
