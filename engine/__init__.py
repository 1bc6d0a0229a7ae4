"""seqcast's engine: series, models, the training loop and the `engine` command line
(docs/training.md, docs/cli.md)."""
