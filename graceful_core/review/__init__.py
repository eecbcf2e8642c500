"""A person's review of a comparison: its status and notes, and a verdict per flipped image."""
