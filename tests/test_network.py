"""The kernel's contended network: exact single-flow times, fair sharing, max-min rates,
flows that come and go, and calibration from a transfer model."""

from __future__ import annotations

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from frontier_core import Link, Network, effective_link
from frontier_core.builtin.transfer import LinkOptions, LinkTransfer


def _finish_times(env, events):
    out = {}
    for name, ev in events.items():
        ev.callbacks.append(lambda _e, n=name: out.__setitem__(n, env.now))
    env.run()
    return out


def test_one_flow_is_bytes_over_capacity_plus_latency():
    env = simpy.Environment()
    net = Network(env)
    ch = net.channel("a", 400e9)
    t = _finish_times(env, {"x": net.send(4e9, [ch], latency=5e-6)})
    assert t["x"] == pytest.approx(4e9 / 400e9 + 5e-6, rel=1e-12)
    assert ch.bytes_moved == pytest.approx(4e9)
    assert ch.busy_s == pytest.approx(0.01)


def test_two_equal_flows_on_one_channel_take_twice_as_long():
    env = simpy.Environment()
    net = Network(env)
    ch = net.channel("a", 100.0)
    t = _finish_times(env, {"x": net.send(100.0, [ch]), "y": net.send(100.0, [ch])})
    assert t == {"x": pytest.approx(2.0), "y": pytest.approx(2.0)}


def test_a_flow_that_joins_later_shares_from_then_on():
    env = simpy.Environment()
    net = Network(env)
    ch = net.channel("a", 100.0)
    events = {"x": net.send(100.0, [ch])}

    def late():
        yield env.timeout(0.5)  # x has 50 bytes left; then both run at 50 B/s
        events["y"] = net.send(100.0, [ch])
        events["y"].callbacks.append(lambda _e: done.__setitem__("y", env.now))

    done: dict[str, float] = {}
    events["x"].callbacks.append(lambda _e: done.__setitem__("x", env.now))
    env.process(late())
    env.run()
    assert done["x"] == pytest.approx(1.5)
    assert done["y"] == pytest.approx(2.0)  # 50 bytes at 50 B/s, then 50 at 100 B/s


def test_max_min_fairness_across_two_channels():
    # x crosses the narrow channel b (capacity 30) and the shared a (100); y only a.
    # Max-min: x is held to 30 by b, y takes the 70 of a left over.
    env = simpy.Environment()
    net = Network(env)
    a, b = net.channel("a", 100.0), net.channel("b", 30.0)
    t = _finish_times(env, {"x": net.send(30.0, [a, b]), "y": net.send(70.0, [a])})
    assert t["x"] == pytest.approx(1.0)
    assert t["y"] == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 2), st.floats(1, 1e3), st.integers(0, 2)),
                min_size=1, max_size=12))
def test_capacity_is_never_exceeded_and_all_bytes_arrive(flows):
    env = simpy.Environment()
    net = Network(env)
    chans = [net.channel(f"c{i}", 100.0 * (i + 1)) for i in range(3)]
    done = []

    def start(at, size, which):
        yield env.timeout(at)
        ev = net.send(size, [chans[which], chans[(which + 1) % 3]])
        yield ev
        done.append(size)

    for f in flows:
        env.process(start(*f))
    env.run()
    assert sorted(done) == sorted(f[1] for f in flows)
    for ch in chans:
        assert ch.bytes_moved <= ch.capacity * ch.busy_s * (1 + 1e-9) + 1e-6
    total = sum(f[1] for f in flows)
    assert sum(ch.bytes_moved for ch in chans) == pytest.approx(2 * total)


def test_effective_link_follows_the_transfer_model():
    link = Link(50e9, 8e-6)
    eff = effective_link(LinkTransfer(LinkOptions(bandwidth_eff=0.8)), link)
    assert eff.bandwidth == pytest.approx(40e9)
    assert eff.latency == pytest.approx(8e-6)


def test_link_transfer_keeps_a_switched_link_switched():
    t = LinkTransfer(LinkOptions(bandwidth_eff=0.8))
    ring, switch = Link(400e9, 3e-6), Link(400e9, 3e-6, switched=True)
    # 8 GPUs, a small all-reduce: 14 ring steps, or two phases through the switch
    assert t.transfer("all_reduce", 0.0, 8, ring) == pytest.approx(14 * 3e-6)
    assert t.transfer("all_reduce", 0.0, 8, switch) == pytest.approx(2 * 3e-6)
    assert t.transfer("all_reduce", 1e9, 8, switch) == pytest.approx(
        2 * 7 / 8 * 1e9 / 320e9 + 2 * 3e-6)


def test_flows_late_in_a_long_run_finish_despite_float_resolution():
    """At large clock values now + remaining/rate can round back to now; the flows must
    still finish instead of waking up forever at the same instant (found in a 40,000-
    request PD run at t = 94 s)."""
    env = simpy.Environment(initial_time=94.11189100657526)
    net = Network(env)
    ch = net.channel("a", 3.2e11)
    done = []

    def go(gap, size):
        yield env.timeout(gap)
        yield net.send(size, [ch])
        done.append(size)

    for gap, size in ((4.958e-08, 637324.7256341329), (2.4398e-06, 270516.92705010646),
                      (2.7383e-06, 41932.5504122585)):
        env.process(go(gap, size))
    steps = 0
    while env.peek() != float("inf"):
        env.step()
        steps += 1
        assert steps < 200, "the network keeps waking at one instant"
    assert len(done) == 3


def _reference_rates(flows) -> list[float]:
    """Progressive filling as first written: every round scans each flow without a rate
    and its channels, and takes the first channel with the smallest share."""
    left = {id(ch): ch.capacity for f in flows for ch in f.channels}
    count: dict[int, int] = {}
    rate = {id(f): -1.0 for f in flows}
    for f in flows:
        for ch in f.channels:
            count[id(ch)] = count.get(id(ch), 0) + 1
    pending = len(flows)
    while pending:
        best, share = None, float("inf")
        for f in flows:
            if rate[id(f)] >= 0:
                continue
            for ch in f.channels:
                s = left[id(ch)] / count[id(ch)]
                if s < share:
                    best, share = ch, s
        for f in best.flows:
            if rate[id(f)] >= 0:
                continue
            rate[id(f)] = share
            pending -= 1
            for ch in f.channels:
                left[id(ch)] -= share
                count[id(ch)] -= 1
    return [rate[id(f)] for f in flows]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from([1 / 3, 1 / 3, 2 / 3, 0.3, 0.7, 3.3]), min_size=1, max_size=6),
       st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=3, unique=True),
                min_size=1, max_size=25))
def test_rates_are_those_of_the_plain_progressive_filling(capacities, routes):
    """The channel-wise filling gives the same floats as scanning every flow each round,
    equal capacities (ties, whose order decides how the leftovers round: capacities
    such as 1/3 are not exact in binary) included."""
    env = simpy.Environment()
    net = Network(env)
    chans = [net.channel(f"c{i}", c) for i, c in enumerate(capacities)]
    for route in routes:
        net.send(1e3, [chans[i % len(chans)] for i in dict.fromkeys(
            i % len(chans) for i in route)])
    assert [f.rate for f in net._flows] == _reference_rates(net._flows)
