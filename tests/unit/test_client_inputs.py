"""Any sequence of driver inputs: only documented misuse errors, timers never in the past, every callback once."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kproto.client import Client, ClientConfig
from kproto.driving import Connect
from kproto.errors import IllegalStateError, KafkaError
from kproto.protocol.messages import MetadataRequest

ops = st.lists(
    st.one_of(
        st.tuples(st.just("timer"), st.floats(min_value=0, max_value=3)),
        st.tuples(st.just("made"), st.integers(0, 3)),
        st.tuples(st.just("lost"), st.integers(0, 3)),
        st.tuples(st.just("data"), st.integers(0, 3), st.binary(max_size=24)),
        st.tuples(st.just("send"), st.sampled_from([None, -1, -2, 5])),
        st.tuples(st.just("coordinator"), st.sampled_from(["g1", "g2"])),
    ),
    max_size=40,
)


@given(ops, st.integers(0, 2**16))
def test_any_input_sequence(sequence: list[tuple[Any, ...]], seed: int) -> None:
    now = 0.0
    client = Client(
        ClientConfig(bootstrap_servers="a:1,b:2", request_timeout_ms=1000, connection_setup_timeout_ms=500),
        now=now,
        rng=random.Random(seed),
    )
    calls: dict[int, int] = {}
    issued: list[int] = []

    def callback_for(i: int) -> Any:
        calls[i] = 0

        def cb(response: Any, error: KafkaError | None) -> None:
            calls[i] += 1
            assert (response is None) != (error is None)
            assert error is None or isinstance(error, KafkaError)

        return cb

    for op in sequence:
        kind = op[0]
        try:
            if kind == "timer":
                now += op[1]
                client.handle_timer(now)
                timer = client.get_timer()
                assert timer is None or timer >= now
            elif kind in ("made", "lost", "data") and issued:
                node = issued[op[1] % len(issued)]
                if kind == "made":
                    client.connection_made(node, now)
                elif kind == "lost":
                    client.connection_lost(node, ConnectionResetError(), now)
                else:
                    client.receive_data(node, op[2], now)
            elif kind == "send":
                client.send(MetadataRequest(), now=now, node_id=op[1], callback=callback_for(len(calls)))
            elif kind == "coordinator":
                client.coordinator(op[1], 0, now)
        except IllegalStateError:
            assert kind in ("made", "data")  # already open / data before connection_made
        issued.extend(c.node_id for c in client.commands() if isinstance(c, Connect))
        client.data_to_send()
        client.events()
    client.close(now)
    assert all(n == 1 for n in calls.values()), calls
    assert client.get_timer() is None
