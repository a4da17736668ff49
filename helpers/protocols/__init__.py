"""The measurement procedures the notebooks share, one module each: labs side by side in turns (turns), their
workers (consumers), per-message accounting (messages), loads-started (loads), settling (settle), pickup, drain,
view cost, enqueue cost (a median with its 95 % interval, in-process and in the request), fault injection
(injection), the kill episode, a bounded backlog under overload (backlog), the server samplers and open-loop points
of a rate ladder (samplers, open_loop), and what the user is told under SMTP faults (user_told)."""
