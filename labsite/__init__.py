"""The Django site under test. It knows nothing of the lab's instruments (helpers)."""
