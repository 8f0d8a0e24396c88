"""Static content (games, news, announcements, FAQ) and media."""
