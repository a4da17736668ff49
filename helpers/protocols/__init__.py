"""The measurement procedures the notebooks share, one module each: labs side by side in turns (turns), their
workers (consumers), per-message accounting (messages), loads-started (loads), settling (settle), pickup, drain,
view cost, fault injection (injection), the kill episode, a bounded backlog under overload (backlog), the
server samplers and open-loop points of a rate ladder (samplers, open_loop), and what the user is told under SMTP
faults (user_told)."""
