"""Player progress: game API keys, achievements, user progress and leaderboards."""
