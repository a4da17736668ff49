"""What measures the running stack from outside its processes: the timing client, the load generator, wrk, the
browser probe, the enqueuer, the task lifecycle recorder's reader, the queue and CPU probes; and what reads the running
lab for checks: the site client (lab.http), the SMTP record (lab.mail), the job ledger (lab.ledger)."""
