"""seqcast's engine: data, models, losses, the training loop and the `engine` CLI."""
