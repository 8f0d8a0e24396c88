"""Player progress: game servers' API keys, achievements and unlocks, levels, points."""
