"""What measures the running stack from outside its processes: the timing client, the load generator, wrk, the
browser probe, the enqueuer, the task lifecycle recorder's reader, the queue and CPU probes."""
