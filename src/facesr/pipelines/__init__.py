"""What a user runs: upscale files, evaluate against HR, the demo."""
