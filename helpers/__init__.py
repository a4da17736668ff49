"""The lab's instruments: they start the real stack, drive it, time it and chart what they measured."""
