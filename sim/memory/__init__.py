"""Memory devices: High Bandwidth Flash, 3D DRAM stacks, their presets and analytic twins."""
