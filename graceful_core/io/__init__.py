"""File loading for graceful: hashing, safe images and zips, datasets, predictions tables."""
