#!/usr/bin/python3
"""Conformance of a segd binary, driven by a client no one here wrote.

Debian's python3-grpcio, with stubs generated from proto/segd/v1/segd.proto by
`python3 -m grpc_tools.protoc`, exercises ingest, segments, subscribe and queries
against a real segd on loopback, checking what SPEC.md promises a client.

Usage: conformance_test.py --segd PATH --proto-dir DIR
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

T0 = 1_700_000_000_000
HOUR = 3_600_000
DAY = 24 * HOUR


def generate_stubs(proto_dir, out_dir):
    from grpc_tools import protoc
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out_dir}",
                      f"--grpc_python_out={out_dir}",
                      os.path.join(proto_dir, "segd/v1/segd.proto")])
    if rc != 0:
        sys.exit(f"grpc_tools.protoc failed with {rc}")
    sys.path.insert(0, out_dir)


def start_segd(binary, log_path):
    log = open(log_path, "w")
    proc = subprocess.Popen([binary, "--listen=127.0.0.1:0", "--clock=manual",
                             f"--start-time={T0}", "--shards=2", "--drain_seconds=3"],
                            stdout=log, stderr=subprocess.STDOUT)
    for _ in range(1000):
        m = re.search(r"segd started: .* port=(\d+) ", open(log_path).read())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    sys.exit("segd did not start:\n" + open(log_path).read())


class Conformance:
    def __init__(self, port):
        import grpc
        from segd.v1 import segd_pb2 as pb, segd_pb2_grpc as rpc
        self.grpc, self.pb = grpc, pb
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=10)
        self.ingest = rpc.IngestStub(channel)
        self.segments = rpc.SegmentsStub(channel)
        self.changes = rpc.ChangesStub(channel)
        self.query = rpc.QueryStub(channel)
        self.admin = rpc.AdminStub(channel)
        self.passed, self.failed = 0, 0

    # -- helpers --

    def check(self, name, fn):
        try:
            fn()
            self.passed += 1
            print(f"ok   {name}")
        except Exception:  # noqa: BLE001 - report every failure and go on
            self.failed += 1
            print(f"FAIL {name}\n{traceback.format_exc()}")

    def expect_code(self, code, fn):
        try:
            fn()
        except self.grpc.RpcError as e:
            assert e.code() == code, f"expected {code}, got {e.code()}: {e.details()}"
            return e
        raise AssertionError(f"expected {code}, the call succeeded")

    def put(self, sid, rule, dry_run=False):
        return self.segments.PutSegment(self.pb.PutSegmentRequest(
            segment=self.pb.Segment(id=sid, rule=rule), dry_run=dry_run))

    def update(self, key, **attrs):
        u = self.pb.ProfileUpdate(key=key)
        for name, value in attrs.items():
            u.set[name].CopyFrom(self.value(value))
        return u

    def value(self, v):
        if isinstance(v, bool):
            return self.pb.Value(bool_value=v)
        if isinstance(v, int):
            return self.pb.Value(int_value=v)
        if isinstance(v, float):
            return self.pb.Value(float_value=v)
        if isinstance(v, list):
            return self.pb.Value(list_value=self.pb.StringList(values=v))
        return self.pb.Value(string_value=v)

    def event(self, etype, t, **props):
        e = self.pb.Event(type=etype, time=t)
        for name, value in props.items():
            e.properties[name].CopyFrom(self.value(value))
        return e

    # -- the checks --

    def segments_api(self):
        r = self.put("dk", 'country = "DK"')
        assert r.segment.id == "dk" and r.entered == 0
        self.put("active", "did(view within 1d)")
        self.put("dk_active", 'in_segment("dk") and in_segment("active")')
        e = self.expect_code(self.grpc.StatusCode.INVALID_ARGUMENT, lambda: self.put("bad", "age >"))
        assert re.match(r"^1:\d+: ", e.details()), e.details()
        self.expect_code(self.grpc.StatusCode.INVALID_ARGUMENT, lambda: self.put("bad id", "true"))
        self.expect_code(self.grpc.StatusCode.FAILED_PRECONDITION,
                         lambda: self.segments.DeleteSegment(self.pb.DeleteSegmentRequest(id="dk")))
        self.expect_code(self.grpc.StatusCode.NOT_FOUND,
                         lambda: self.segments.GetSegment(self.pb.GetSegmentRequest(id="nope")))
        v = self.segments.ValidateRule(self.pb.ValidateRuleRequest(rule="count(view"))
        assert not v.ok and v.diagnostics[0].line == 1 and v.diagnostics[0].column > 1
        assert self.segments.ValidateRule(self.pb.ValidateRuleRequest(rule="age > 3")).ok
        ids = [s.id for s in self.segments.ListSegments(self.pb.ListSegmentsRequest()).segments]
        assert ids == sorted(ids) and {"dk", "active", "dk_active"} <= set(ids), ids

    def ingest_and_subscribe(self):
        seen = []
        snapshot_done = threading.Event()
        stream = self.changes.Subscribe(self.pb.SubscribeRequest(snapshot=True))

        def read():
            try:
                for batch in stream:
                    if batch.snapshot_done:
                        assert batch.cursor, "the snapshot_done batch carries the cut's cursor"
                        snapshot_done.set()
                    elif not snapshot_done.is_set():
                        assert not batch.cursor, "snapshot batches carry an empty cursor"
                    seen.extend((c.key, c.segment, c.kind, c.cause, c.time) for c in batch.changes)
            except self.grpc.RpcError:
                pass

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert snapshot_done.wait(10), "no snapshot_done batch"

        batches = []
        for seq in range(3):
            batch = self.pb.UpdateBatch(seq=seq)
            for i in range(10):
                u = self.update(f"u{seq * 10 + i}", country="DK" if i % 2 == 0 else "SE",
                                age=20 + i, tags=["a", "b"], vip=i == 3, ltv=1.5 * i)
                u.events.append(self.event("view", T0 - HOUR, url="/shoes/1"))
                batch.updates.append(u)
            batches.append(batch)
        acks = list(self.ingest.Stream(iter(batches)))
        assert sorted(a.seq for a in acks) == [0, 1, 2], acks
        assert all(a.applied == 10 and not a.errors for a in acks)

        deadline = time.time() + 10
        ENTER = self.pb.CHANGE_KIND_ENTER
        while time.time() < deadline and len([s for s in seen if s[1] == "dk_active"]) < 15:
            time.sleep(0.05)
        entered = {s[0] for s in seen if s[1] == "dk_active" and s[2] == ENTER}
        assert len(entered) == 15, sorted(entered)
        assert all(s[3] == self.pb.CAUSE_UPDATE for s in seen), seen[:5]

        # Time passes: the view leaves its 1d window at exactly T0 - 1h + 1d.
        r = self.admin.SetTime(self.pb.SetTimeRequest(now=T0 + 2 * DAY))
        assert r.now == T0 + 2 * DAY
        deadline = time.time() + 10
        while time.time() < deadline and len([s for s in seen if s[3] == self.pb.CAUSE_TIME]) < 60:
            time.sleep(0.05)
        timed = [s for s in seen if s[3] == self.pb.CAUSE_TIME]
        assert len(timed) == 30 + 15, len(timed)  # active for all 30, dk_active for 15
        assert all(s[4] == T0 - HOUR + DAY for s in timed), timed[:3]
        stream.cancel()

        self.expect_code(self.grpc.StatusCode.FAILED_PRECONDITION,
                         lambda: self.admin.SetTime(self.pb.SetTimeRequest(now=T0)))

    def bad_updates(self):
        batch = self.pb.UpdateBatch(seq=9)
        batch.updates.append(self.update("ok1", country="DK"))
        batch.updates.append(self.pb.ProfileUpdate(key=""))
        bad = self.pb.ProfileUpdate(key="nan")
        bad.set["x"].CopyFrom(self.pb.Value(float_value=float("nan")))
        batch.updates.append(bad)
        far = self.pb.ProfileUpdate(key="future")
        far.events.append(self.event("view", T0 + 100 * DAY))
        batch.updates.append(far)
        ack = self.ingest.Apply(batch)
        assert ack.seq == 9 and ack.applied == 1, ack
        assert [e.index for e in ack.errors] == [1, 2, 3], ack.errors
        assert ack.errors[1].key == "nan" and ack.errors[1].message
        self.expect_code(self.grpc.StatusCode.NOT_FOUND,
                         lambda: self.query.GetProfile(self.pb.GetProfileRequest(key="nan")))

    def queries(self):
        p = self.query.GetProfile(self.pb.GetProfileRequest(key="u0"))
        assert p.attributes["country"].string_value == "DK"
        assert list(p.attributes["tags"].list_value.values) == ["a", "b"]
        assert p.attributes["age"].int_value == 20
        assert "dk" in p.segments and list(p.segments) == sorted(p.segments)
        members = [k for b in self.query.ListMembers(self.pb.ListMembersRequest(segment="dk"))
                   for k in b.keys]
        assert len(members) == len(set(members)) and "u0" in members and "ok1" in members
        c = self.query.Count(self.pb.CountRequest(rule='country = "DK" and age >= 22'))
        assert c.total >= 31 and c.matched == 12, c
        self.expect_code(self.grpc.StatusCode.INVALID_ARGUMENT,
                         lambda: self.query.Count(self.pb.CountRequest(rule="(")))
        f = self.query.Funnel(self.pb.FunnelRequest(steps=["view", "buy"], within_ms=0))
        assert list(f.counts) == [30, 0], f
        self.expect_code(self.grpc.StatusCode.INVALID_ARGUMENT,
                         lambda: self.query.Funnel(self.pb.FunnelRequest(steps=["view"], within_ms=-1)))
        x = self.query.Explain(self.pb.ExplainRequest(key="u0", segment="dk"))
        assert x.matched and x.terms[0].value == "true" and x.terms[0].depth == 0
        exported = {p.key: p for b in self.query.Export(self.pb.ExportRequest()) for p in b.profiles}
        assert len(exported) == 31 and exported["u3"].attributes["vip"].bool_value
        s = self.admin.GetStats(self.pb.GetStatsRequest())
        assert s.profiles == 31 and s.segments == 3 and s.now == T0 + 2 * DAY and s.incarnation

    def replay(self):
        profile = self.pb.Profile(key="r1")
        profile.attributes["country"].CopyFrom(self.value("DK"))
        profile.events.append(self.event("view", T0 + 2 * DAY - HOUR, url="/a"))
        summary = self.ingest.Replay(iter([self.pb.ReplayRequest(profiles=[profile], quiet=True)]))
        assert summary.profiles == 1 and summary.events == 1, summary
        p = self.query.GetProfile(self.pb.GetProfileRequest(key="r1"))
        assert set(p.segments) == {"dk", "active", "dk_active"}, p.segments
        r = self.segments.DeleteSegment(self.pb.DeleteSegmentRequest(id="dk_active"))
        assert r.exited == 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segd", required=True)
    parser.add_argument("--proto-dir", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate_stubs(args.proto_dir, tmp)
        proc, port = start_segd(args.segd, os.path.join(tmp, "segd.log"))
        try:
            c = Conformance(port)
            c.check("segments: put, validate, errors, list", c.segments_api)
            c.check("ingest stream + snapshot subscription + exact TIME changes", c.ingest_and_subscribe)
            c.check("rejected updates reported by index", c.bad_updates)
            c.check("queries: profile, members, count, funnel, explain, export, stats", c.queries)
            c.check("replay, delete segment", c.replay)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=15)
        if code != 0:
            c.failed += 1
            print(f"FAIL segd exited {code} after SIGTERM")
        print(f"{c.passed} passed, {c.failed} failed")
        return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
