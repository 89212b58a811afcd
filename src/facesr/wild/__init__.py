"""In-the-wild photos and video: find, frame, restore and paste back faces."""
