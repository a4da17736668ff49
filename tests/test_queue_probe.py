"""helpers.instruments.queue_probe: the depth sampler ends on the queue's state as its block ends."""

import contextlib
import math

from helpers.instruments.queue_probe import QueueDepthSampler, drain_rate


class Counter:
    """A queue's depth reader over a plain number (the sampler's one call into a backend)."""

    def __init__(self, depth: int):
        self.depth = depth

    @contextlib.contextmanager
    def depth_reader(self):
        yield lambda: self.depth


def test_a_queue_that_emptied_between_two_samples_ends_empty_in_them():
    """drain_rate() looks for the first sample under a tenth of the peak: before, a sampler stopped between two
    samples could end above it, and drain_rate raised IndexError (test_protocols' drain, once in a fresh clone)."""
    queue = Counter(300)
    with QueueDepthSampler(queue, interval_s=60.0) as sampler:  # one sample in the block, at its start
        while not sampler.samples:
            pass
        queue.depth = 0
    depth = sampler.frame()
    assert depth["depth"].tolist() == [300, 0]
    assert math.isnan(drain_rate(depth))  # read without error: two samples span no fall between 90 % and 10 %
