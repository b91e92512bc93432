"""Model loading and the generation engines behind one protocol."""
