"""Inputs: models. A Hugging Face ``config.json`` becomes a :class:`~sim.model.spec.ModelSpec` (tensors,
FLOPs and bytes per layer); ``catalog`` names the shipped configs; ``dtype`` the number formats."""
