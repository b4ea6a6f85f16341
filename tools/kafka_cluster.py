"""Run the test suite's Apache Kafka by hand: fetch it, start 1 or 3 nodes, print the addresses.

Usage, from the repository root::

    python tools/kafka_cluster.py            # one broker+controller node
    python tools/kafka_cluster.py --brokers 3
    python tools/kafka_cluster.py --fetch-only

It prints the bootstrap string of each listener (PLAINTEXT, SSL, SASL_PLAINTEXT,
SASL_SSL), the SASL user, the CA file and the jar folder, then runs until
Ctrl-C, when it stops the nodes and removes their folder. The version is the
one ``tests/kafka/pom.xml`` pins; the jars are cached in ``.cache/kafka/``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _kafka import MECHANISMS, KafkaCluster, fetch, kafka_version  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", type=int, choices=(1, 3), default=1, help="nodes to start (default 1)")
    parser.add_argument("--racks", action="store_true",
                        help="node n in rack 'rack<n>' with the rack-aware replica selector (KIP-392)")
    parser.add_argument("--fetch-only", action="store_true", help="resolve the jars with Maven and exit")
    args = parser.parse_args(argv)
    lib = fetch()
    if args.fetch_only:
        print(f"Apache Kafka {kafka_version()}: {lib}")
        return 0
    started = time.monotonic()
    cluster = KafkaCluster(args.brokers, lib=lib, racks=args.racks)
    cluster.start()
    try:
        print(f"Apache Kafka {cluster.version}, {args.brokers} node(s), ready in {time.monotonic() - started:.1f}s")
        for listener, bootstrap in cluster.bootstraps.items():
            print(f"  {listener:<15} {bootstrap}")
        print(f"  SASL            {', '.join(MECHANISMS)}; user {cluster.username!r} password {cluster.password!r}")
        print(f"  OAUTHBEARER     unsecured JWS, e.g. {cluster.oauth_token()}")
        print(f"  CA file         {cluster.ca_file}")
        print(f"  jars            {cluster.lib}")
        print(f"  logs            {', '.join(str(n.log_path) for n in cluster.nodes)}")
        print("Ctrl-C stops it.", flush=True)
        while all(n.running for n in cluster.nodes):
            time.sleep(0.5)
        print("a node exited:\n" + cluster.log_tail(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
