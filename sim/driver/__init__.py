"""The token-generation driver: replays a scheduler's batches, iteration by iteration, through a built
system (``token_driver``), and records what each op waited for (``blame``)."""
