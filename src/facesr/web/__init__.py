"""facesr.web: the local page and JSON API of `facesr serve`."""
