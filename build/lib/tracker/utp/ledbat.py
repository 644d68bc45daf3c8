"""LEDBAT congestion control (RFC 6817 as BEP 29 applies it) and the retransmission timer.

µTP exists so that a seeder at home does not fill its uplink's queue: the sender measures how long
its packets wait on the way (the one-way delay the receiver echoes in `timestamp_diff`, minus the
lowest such delay seen in the last minutes, which is the path's own delay) and steers the window
so that queueing stays near `TARGET`. Below the target the window grows by at most `GAIN` bytes
per round trip; above it, it shrinks; a loss halves it. Like libtorrent, a new connection starts
in slow start (the window grows by what was acknowledged) until the delay nears the target or a
packet is lost, so that a fast idle link fills in a few round trips instead of hundreds.
"""

from __future__ import annotations

from tracker.utp.packet import MICROS_MASK

TARGET = 100_000  # microseconds of queueing delay LEDBAT aims for (BEP 29)
GAIN = 3000  # bytes the window may grow per round trip in congestion avoidance (libutp's figure)
BASE_HISTORY_BUCKETS = 3  # minutes of delay minima kept for the base delay
BUCKET_SECONDS = 60.0
MIN_RTO = 0.5
MAX_RTO = 3.0  # a peer that dropped packets while busy (libtorrent does) is retried soon
INITIAL_RTO = 1.0


class DelayHistory:
    """The lowest one-way delay over the last few minutes (clocks differ, so only differences count).

    Samples are microsecond differences of two unsynchronised clocks modulo 2**32; the base is the
    minimum in modular order, and a sample's queueing delay is how far above the base it lies.
    """

    def __init__(self) -> None:
        self.buckets: list[int] = []
        self.current: int | None = None
        self.started = 0.0

    def add(self, sample: int, now: float) -> int:
        """Record a sample taken at `now` (seconds) and return its delay above the base."""
        if self.current is None or _below(sample, self.current):
            self.current = sample
        if now - self.started >= BUCKET_SECONDS:
            self.buckets.append(self.current)
            del self.buckets[:-BASE_HISTORY_BUCKETS]
            self.current = sample
            self.started = now
        base = self.current
        for value in self.buckets:
            if _below(value, base):
                base = value
        return (sample - base) & MICROS_MASK


def _below(a: int, b: int) -> bool:
    """Whether `a` is lower than `b` in modular order."""
    return a != b and ((b - a) & MICROS_MASK) < 0x80000000


class Congestion:
    """The congestion window (bytes allowed in flight) and the round-trip estimate."""

    def __init__(self, packet_size: int, max_window: int) -> None:
        self.packet_size = packet_size
        self.min_window = 2 * packet_size
        self.max_window = max_window
        self.window = float(2 * packet_size)
        self.slow_start = True
        self.ssthresh = float(max_window)  # slow start ends here (after a timeout: half the old window)
        self.history = DelayHistory()
        self.queueing = 0  # microseconds above the base in the latest sample
        self.rtt: float | None = None
        self.rtt_var = 0.0
        self.rto = INITIAL_RTO

    def delay_sample(self, timestamp_diff: int, now: float) -> None:
        """The peer echoed how long our packet took; track the queueing delay."""
        if timestamp_diff:
            self.queueing = self.history.add(timestamp_diff, now)

    def rtt_sample(self, seconds: float) -> None:
        """A packet sent once was acknowledged after `seconds` (RFC 6298)."""
        if self.rtt is None:
            self.rtt = seconds
            self.rtt_var = seconds / 2
        else:
            self.rtt_var += (abs(self.rtt - seconds) - self.rtt_var) / 4
            self.rtt += (seconds - self.rtt) / 8
        self.rto = min(max(self.rtt + 4 * self.rtt_var, MIN_RTO), MAX_RTO)

    def progress(self) -> None:
        """New data was acknowledged: the path works again, so undo the timer's backoff (as Linux
        does; waiting for a fresh sample could take many round trips of retransmissions)."""
        if self.rtt is not None:
            self.rto = min(max(self.rtt + 4 * self.rtt_var, MIN_RTO), MAX_RTO)

    def acked(self, nbytes: int, window_full: bool) -> None:
        """Grow or shrink the window for `nbytes` newly acknowledged (only grow a window in use)."""
        off_target = (TARGET - min(self.queueing, 4 * TARGET)) / TARGET
        if self.slow_start:
            if self.queueing > TARGET * 0.9 or self.window >= self.ssthresh:
                self.slow_start = False
            elif window_full:
                self.window += nbytes
        if not self.slow_start and (window_full or off_target < 0):
            self.window += GAIN * off_target * nbytes / self.window
        self.window = min(max(self.window, self.min_window), self.max_window)

    def lost(self) -> None:
        """A packet was lost (once per window): halve, and leave slow start."""
        self.slow_start = False
        self.window = max(self.window / 2, self.min_window)
        self.ssthresh = self.window

    def timed_out(self) -> None:
        """Nothing was acknowledged for a whole RTO: back off, and slow-start from the minimum
        window back to half the window that failed (TCP's recovery)."""
        self.ssthresh = max(self.window / 2, self.min_window)
        self.slow_start = True
        self.window = self.min_window
        self.rto = min(self.rto * 2, MAX_RTO)
