"""Image IO and validation, resampling operators, datasets."""
