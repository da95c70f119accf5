#!/usr/bin/env python3
"""Consumer-group fail-over against the test broker, with an independent client.

Tells a broker bug from ours: the members here are Python confluent-kafka
(librdkafka) consumers, not Streetscope code. Each case starts its own tansu on
127.0.0.1 (the flags and SQLite store of crates/testbroker), a topic with
PARTITIONS partitions, and member processes of one group with a 6 s session
timeout, then breaks the group the way Kubernetes does:

  follower-killed    kill -9 the member that joined second; the survivor must
                     own every partition.
  leader-killed      kill -9 the group leader (the member that joined first);
                     the survivor must own every partition.
  leader-restarted   kill -9 the leader and start a new process in its place
                     2 s later (--restart-after), before the session timeout;
                     the two live members must share every partition.
  follower-restarted the same with the follower.
  sole-member-restarted
                     a group of one member: kill -9 it (the leader) and start
                     a new process 2 s later, before the session timeout; the
                     new member must own every partition.

The default assignor is cooperative-sticky, as Streetscope's consumers use;
--strategy range tries the eager protocol.

A case passes when, within session timeout + GRACE_S of the kill, the live
members' assignments cover every partition exactly once (each live member owns
at least one when there are two) and then stay so for HOLD_S and until 3 s
past the dead member's session (a rebalance in
between, as the dead member's expiry makes, is waited out), and a message produced
to every partition afterwards is consumed by a live member. It prints
PASS/FAIL per case and exits 1 if any failed. Everything is bounded: a case
takes at most about 60 s, and all processes it starts are killed at its end.

Usage: reproduce_group_wedge.py [--tansu BIN] [--strategy S] [--restart-after S]
                                [--repeat N] [--static] [--keep] [CASE ...]
Run with a Python that has confluent_kafka (the deploy venv has it).
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SESSION_TIMEOUT_MS = 6000
PARTITIONS = 4
GRACE_S = 8.0  # after the session timeout, for the lazy expiry and the rejoin
HOLD_S = 3.0
RESTART_AFTER_S = 2.0  # before the session timeout
CASES = ["follower-killed", "leader-killed", "leader-restarted", "follower-restarted",
         "sole-member-restarted"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, deadline_s=30):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"tansu is not listening on 127.0.0.1:{port}")


# --------------------------------------------------------------------------
# A member: a separate process, so that kill -9 is real.


def member_main(args):
    from confluent_kafka import Consumer

    conf = {
        "bootstrap.servers": args.brokers,
        "group.id": args.group,
        "client.id": args.name,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": max(SESSION_TIMEOUT_MS // 4, 250),
        "partition.assignment.strategy": args.strategy,
        "auto.offset.reset": "latest",
        "enable.auto.commit": False,
        "topic.metadata.refresh.interval.ms": 1000,
        # The JoinGroup responses name the leader: "LeaderId X (me)".
        "debug": "cgrp",
    }
    if os.environ.get("WEDGE_STATIC_MEMBERS"):
        # Static membership: a restarted member comes back as the same instance.
        conf["group.instance.id"] = args.name.rstrip("2")
    c = Consumer(conf)
    c.subscribe([args.topic])
    out = sys.stdout
    last = None
    while True:
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            out.write(json.dumps({"ev": "msg", "p": m.partition(), "v": m.value().decode()}) + "\n")
        parts = sorted(tp.partition for tp in c.assignment())
        if parts != last:
            last = parts
            out.write(json.dumps({"ev": "assignment", "parts": parts}) + "\n")
        out.flush()


# --------------------------------------------------------------------------
# The harness.


class Member:
    def __init__(self, name, brokers, group, topic, strategy, logdir):
        self.name = name
        self.parts = None
        self.msgs = []
        self.alive = True
        self.log_path = os.path.join(logdir, f"{name}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "member", "--brokers", brokers,
             "--group", group, "--topic", topic, "--name", name, "--strategy", strategy],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev["ev"] == "assignment":
                self.parts = ev["parts"]
            elif ev["ev"] == "msg":
                self.msgs.append(ev["v"])

    def is_leader(self):
        """What librdkafka's last JoinGroup response said."""
        with open(self.log_path, errors="replace") as f:
            lines = [l for l in f if "LeaderId" in l]
        return bool(lines) and "(me)" in lines[-1].split("LeaderId", 1)[1].split(",", 1)[0]

    def kill(self):
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.alive = False

    def close(self):
        self.kill()
        self.log.close()


def covered_once(members, n):
    live = [m for m in members if m.alive]
    if any(m.parts is None for m in live):
        return False
    owned = [p for m in live for p in m.parts]
    if sorted(owned) != list(range(n)):
        return False
    return len(live) < 2 or all(m.parts for m in live)


def wait_for(pred, timeout_s, step=0.1):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def describe(members):
    return ", ".join(f"{m.name}{'' if m.alive else '(dead)'}={m.parts}" for m in members)


def run_case(case, tansu, strategy, workdir, restart_after_s):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    d = tempfile.mkdtemp(prefix=case + "-", dir=workdir)
    port = free_port()
    brokers = f"127.0.0.1:{port}"
    blog = open(os.path.join(d, "broker.log"), "w")
    env = dict(os.environ, RUST_LOG=os.environ.get("TANSU_LOG", "info"))
    broker = subprocess.Popen(
        [tansu, "broker", "--listener-url", f"tcp://{brokers}", "--advertised-listener-url",
         f"tcp://{brokers}", "--storage-engine", "sqlite://tansu.db", "--silent"],
        cwd=d, stdout=blog, stderr=blog, stdin=subprocess.DEVNULL, env=env)
    members = []
    try:
        wait_listening(port)
        topic, group = "wedge", f"wedge-{case}"
        quiet = {"bootstrap.servers": brokers, "log.connection.close": False}
        admin = AdminClient(quiet)
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(15)
        producer = Producer(dict(quiet, acks="all", **{"linger.ms": 0}))

        def member(name):
            m = Member(name, brokers, group, topic, strategy, d)
            members.append(m)
            return m

        a = member("a")
        if not wait_for(lambda: covered_once([a], PARTITIONS), 30):
            return False, f"set-up: a alone never got every partition ({describe(members)})"
        if case.startswith("sole"):
            time.sleep(1.0)  # let it heartbeat once in the formed group
            if not a.is_leader():
                return False, "set-up: the sole member's JoinGroup response did not name it leader"
            leader = victim = a
        else:
            b = member("b")
            if not wait_for(lambda: covered_once([a, b], PARTITIONS), 30):
                return False, f"set-up: a and b never shared the partitions ({describe(members)})"
            time.sleep(1.0)  # let both heartbeat once in the formed group
            leader = a if a.is_leader() else b if b.is_leader() else None
            if leader is None:
                return False, "set-up: no member's JoinGroup response named it leader"
            follower = b if leader is a else a
            victim = leader if case.startswith("leader") else follower
            if case.startswith("leader") and leader is not a:
                return False, "set-up: the first member to join is not the leader"

        victim.kill()
        killed_at = time.monotonic()
        if case.endswith("restarted"):
            time.sleep(restart_after_s)
            member(victim.name + "2")
        # Converged: every partition owned once, for HOLD_S on end and until 3 s
        # past the dead member's session. The dead
        # member's expiry (at the session timeout) may rebalance a group that
        # had already converged (an eager assignor revokes everything), so a
        # broken hold is waited out until the deadline.
        deadline = killed_at + SESSION_TIMEOUT_MS / 1000 + GRACE_S
        took = None
        while took is None:
            if not wait_for(lambda: covered_once(members, PARTITIONS), deadline - time.monotonic()):
                return False, (f"{victim.name} ({'leader' if victim is leader else 'follower'}) killed: "
                               f"after {time.monotonic() - killed_at:.1f} s the live members own "
                               f"{describe(members)}, not every partition once")
            took = time.monotonic() - killed_at
            # The hold ends no earlier than 3 s past the dead member's session.
            hold = max(HOLD_S, killed_at + SESSION_TIMEOUT_MS / 1000 + 3 - time.monotonic())
            if not wait_for(lambda: not covered_once(members, PARTITIONS), hold, step=0.05):
                break
            took = None
        tag = f"probe-{case}-{time.time_ns()}"
        for p in range(PARTITIONS):
            producer.produce(topic, value=f"{tag}-{p}".encode(), partition=p)
        producer.flush(10)
        live = [m for m in members if m.alive]
        want = {f"{tag}-{p}" for p in range(PARTITIONS)}
        if not wait_for(lambda: want <= {v for m in live for v in m.msgs}, 10):
            got = {v for m in live for v in m.msgs} & want
            return False, f"assigned in {took:.1f} s, but consumed only {len(got)} of {len(want)} probes"
        return True, (f"{victim.name} ({'leader' if victim is leader else 'follower'}) killed: "
                      f"every partition owned once after {took:.1f} s ({describe(members)}), "
                      f"held to {time.monotonic() - killed_at:.1f} s, {len(want)} probes consumed")
    finally:
        for m in members:
            m.close()
        broker.send_signal(signal.SIGKILL)
        broker.wait()
        blog.close()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "member":
        p = argparse.ArgumentParser()
        p.add_argument("member")
        for a in ("--brokers", "--group", "--topic", "--name", "--strategy"):
            p.add_argument(a, required=True)
        return member_main(p.parse_args())

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tansu", default=os.path.expanduser("~/.cache/streetscope/tansu/bin/tansu"))
    p.add_argument("--strategy", default="cooperative-sticky",
                   help="partition.assignment.strategy (Streetscope uses cooperative-sticky; try range)")
    p.add_argument("--restart-after", type=float, default=RESTART_AFTER_S, metavar="S",
                   help="seconds from the kill to the restart in the *-restarted cases "
                   f"(default {RESTART_AFTER_S}; below the session timeout, {SESSION_TIMEOUT_MS / 1000:.0f} s)")
    p.add_argument("--repeat", type=int, default=1, metavar="N", help="run each case N times (at most 20)")
    p.add_argument("--static", action="store_true",
                   help="static membership: group.instance.id per member, kept by a restarted one")
    p.add_argument("--keep", action="store_true", help="keep the broker and member logs")
    p.add_argument("cases", nargs="*", metavar="CASE", help=" ".join(CASES) + " (default: all)")
    args = p.parse_args()
    for c in args.cases:
        if c not in CASES:
            p.error(f"unknown case {c}: one of {' '.join(CASES)}")
    args.cases = args.cases or CASES
    if not 0 <= args.restart_after < SESSION_TIMEOUT_MS / 1000 or not 1 <= args.repeat <= 20:
        p.error("--restart-after must be below the session timeout and --repeat within 1..20")
    if args.static:
        os.environ["WEDGE_STATIC_MEMBERS"] = "1"
    workdir = tempfile.mkdtemp(prefix="group-wedge-")
    failed = 0
    for case in [c for c in args.cases for _ in range(args.repeat)]:
        t0 = time.monotonic()
        ok, why = run_case(case, args.tansu, args.strategy, workdir, args.restart_after)
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {case} [{args.strategy}{', static' if args.static else ''}] ({time.monotonic() - t0:.0f} s): {why}",
              flush=True)
    if args.keep or failed:
        print(f"logs: {workdir}")
    else:
        subprocess.run(["rm", "-rf", workdir])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
