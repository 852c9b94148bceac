"""What a caller receives: the overlay, mask and cutout drawn, encoded (PNG, JPEG, WebP, JSON), and the summary."""
