"""Media assets: uploads, storage backends, image processing."""
