"""Shared links with contention: concurrent transfers share bandwidth, max-min fairly.

A ``Channel`` is one direction of a link with a capacity in bytes/s (a GPU's
NIC or NVLink port, a replica's aggregate of them, a switch uplink). A flow
crosses one or more channels; whenever a flow starts or ends, every active
flow's rate is recomputed by progressive filling (max-min fairness, the
steady state TCP/RDMA congestion control approaches): the most contended
channel splits its capacity equally among its flows, those flows are fixed at
that rate, and the rest share what is left. Two equal flows on one channel
therefore each take twice as long as one alone.

Events happen only when a flow starts or finishes (never per byte or packet),
so a transfer costs a few simpy events. Any workflow can use it: KV-cache
transfers between prefill and decode, expert dispatch between clusters,
activations between attention and FFN pools.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from frontier_core.components import Link, TransferModel

if TYPE_CHECKING:
    import simpy

_CALIBRATION_BYTES = float(1 << 30)


def effective_link(model: TransferModel, link: Link) -> Link:
    """The bandwidth and latency a ``TransferModel`` achieves on a point-to-point send
    over ``link``: latency is its time for 0 bytes, bandwidth its marginal rate for
    1 GiB. Lets a contended ``Network`` honour whatever transfer model the run uses
    (e.g. the kernel's achievable fraction of the line rate)."""
    lat = model.transfer("send_recv", 0.0, 2, link)
    t = model.transfer("send_recv", _CALIBRATION_BYTES, 2, link)
    if t <= lat:
        return Link(float("inf"), lat)
    return Link(_CALIBRATION_BYTES / (t - lat), lat)


@dataclass(eq=False)
class Channel:
    """One direction of a link: ``capacity`` bytes/s shared by the flows crossing it.
    ``bytes_moved`` and ``busy_s`` (time with at least one flow) accumulate over the run."""

    name: str
    capacity: float
    bytes_moved: float = 0.0
    busy_s: float = 0.0
    flows: list[Flow] = field(default_factory=list)


@dataclass(eq=False)
class Flow:
    """A transfer in progress: ``remaining`` bytes at ``rate`` bytes/s."""

    size: float
    channels: tuple[Channel, ...]
    latency: float
    done: simpy.Event
    remaining: float = 0.0
    rate: float = 0.0
    start: float = 0.0


class Network:
    """Max-min fair sharing of channels among concurrent flows, on one simpy clock."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.channels: list[Channel] = []
        self._flows: list[Flow] = []
        # The channels that carry a flow now, in the order they took their first one.
        self._busy: dict[Channel, None] = {}
        self._last = 0.0
        self._generation = 0

    def channel(self, name: str, capacity: float) -> Channel:
        """A new channel of ``capacity`` bytes/s (must be > 0)."""
        if not capacity > 0:
            raise ValueError(f"channel {name!r} needs a positive capacity, got {capacity}")
        ch = Channel(name, capacity)
        self.channels.append(ch)
        return ch

    def send(self, nbytes: float, channels: tuple[Channel, ...] | list[Channel],
             latency: float = 0.0) -> simpy.Event:
        """Start moving ``nbytes`` across ``channels``; the event fires when the last byte
        has arrived: the data phase (at the fair-share rate, which changes as other
        flows come and go) plus ``latency`` seconds."""
        env = self.env
        done = env.event()
        if nbytes <= 0 or not channels:
            env.timeout(latency).callbacks.append(lambda _e: done.succeed())
            return done
        self._advance()
        f = Flow(float(nbytes), tuple(channels), latency, done, remaining=float(nbytes),
                 start=env.now)
        self._flows.append(f)
        for ch in f.channels:
            ch.flows.append(f)
            self._busy[ch] = None
        self._reschedule()
        return done

    @property
    def active(self) -> int:
        """Flows currently moving data."""
        return len(self._flows)

    # ---- internals ----------------------------------------------------
    def _advance(self) -> None:
        """Move every flow forward to now at its current rate."""
        now = self.env.now
        dt = now - self._last
        self._last = now
        if dt <= 0:
            return
        for ch in self.channels:
            if ch.flows:
                ch.busy_s += dt
        for f in self._flows:
            moved = min(f.rate * dt, f.remaining)
            f.remaining -= moved
            for ch in f.channels:
                ch.bytes_moved += moved

    def _rates(self) -> None:
        """Progressive filling: saturate the most contended channel first. Among equally
        contended channels, the first in the order of the flows left and their channels
        goes first (the order fixes how the leftover capacities round)."""
        flows = self._flows
        for f in flows:
            f.rate = -1.0
        # A channel's flows are listed on it, once per time a flow crosses it.
        left = {ch: ch.capacity for ch in self._busy}
        count = {ch: len(ch.flows) for ch in self._busy}
        pending = len(flows)
        # NOTE: perf — each round scans the channels that still carry flows without a
        # rate (a few), not every such flow's channels; the flows are read only to
        # break a tie.
        while pending:
            share = float("inf")
            for ch, n in count.items():
                s = left[ch] / n
                if s < share:
                    share = s
            tied = [ch for ch, n in count.items() if left[ch] / n == share]
            best = tied[0] if tied else None
            if len(tied) > 1:
                first = set(tied)
                best = next(ch for f in flows if f.rate < 0 for ch in f.channels if ch in first)
            assert best is not None
            for f in best.flows:
                if f.rate >= 0:
                    continue
                f.rate = share
                pending -= 1
                for ch in f.channels:
                    left[ch] -= share
                    n = count[ch] - 1
                    if n:
                        count[ch] = n
                    else:
                        del count[ch]

    def _reschedule(self) -> None:
        self._rates()
        self._generation += 1
        if not self._flows:
            return
        nxt = min(f.remaining / f.rate for f in self._flows)
        gen = self._generation
        self.env.timeout(nxt).callbacks.append(lambda _e: self._wake(gen))

    def _wake(self, gen: int) -> None:
        if gen != self._generation:
            return  # a flow started or ended since; a newer wake-up is scheduled
        self._advance()
        # Done when what is left would take less than the clock can resolve (at t of
        # 100 s, float steps are ~1e-14 s): otherwise a wake-up at now + tiny == now
        # would move nothing and repeat forever.
        tick = max(1e-12, self.env.now * 1e-13)
        finished = [f for f in self._flows
                    if f.remaining <= 1e-9 * f.size or f.remaining <= f.rate * tick]
        for f in finished:
            self._flows.remove(f)
            for ch in f.channels:
                ch.flows.remove(f)
                if not ch.flows:
                    self._busy.pop(ch, None)
            if f.latency > 0:
                self.env.timeout(f.latency).callbacks.append(lambda _e, d=f.done: d.succeed())
            else:
                f.done.succeed()
        self._reschedule()
