"""Training on text: data, the training loop behind ``genesis train``, plots."""
