"""What turns samples into figures: latency statistics and the queueing model."""
