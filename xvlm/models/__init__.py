"""The X-VLM model: configs, towers, concept pooling, heads, losses, weight loading."""
