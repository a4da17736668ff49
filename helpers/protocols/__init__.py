"""The measurement procedures the notebooks share, one module each: labs side by side in turns (turns), their
workers (consumers), per-message accounting (messages), loads-started (loads), settling (settle), pickup, drain,
the kill episode, view cost, the server samplers and open-loop points (samplers, open_loop)."""
