#!/usr/bin/python3
"""redis-py (Debian 12's python3-redis), unmodified, against a running corral started by
tests/integration/clients_test.cc (ports and CA in the environment): users and their ACL errors,
pipelines, and TLS."""
import os
import unittest

import redis

HOST = "127.0.0.1"
PORT = int(os.environ["CORRAL_RESP_PORT"])
TLS_PORT = int(os.environ["CORRAL_RESP_TLS_PORT"])
CA = os.environ["CORRAL_TLS_CA"]
# User "app": reads and writes plain:*, only reads ro:*, no dangerous commands (clients_test.cc).
APP = {"username": "app", "password": "app-pw"}


class RedisPyTest(unittest.TestCase):
    def test_an_acl_user_runs_its_commands_and_gets_noperm_for_the_rest(self):
        r = redis.Redis(host=HOST, port=PORT, **APP)
        self.assertTrue(r.set("plain:py", "v1"))
        self.assertEqual(r.get("plain:py"), b"v1")
        self.assertEqual(r.incr("plain:py:n"), 1)
        self.assertEqual(r.mget(["plain:py", "plain:none"]), [b"v1", None])
        self.assertTrue(r.expire("plain:py", 100))
        self.assertGreater(r.ttl("plain:py"), 90)
        pipe = r.pipeline(transaction=False)
        for i in range(200):
            pipe.set(f"plain:py:{i}", i)
        for i in range(200):
            pipe.get(f"plain:py:{i}")
        results = pipe.execute()
        self.assertEqual(results[:200], [True] * 200)
        self.assertEqual(results[200:], [str(i).encode() for i in range(200)])
        self.assertIsNone(r.get("ro:py"))
        with self.assertRaises(redis.exceptions.NoPermissionError):
            r.set("ro:py", "x")
        with self.assertRaises(redis.exceptions.NoPermissionError):
            r.get("order:1")
        with self.assertRaises(redis.exceptions.NoPermissionError):
            r.flushall()
        self.assertEqual(r.acl_whoami(), "app")

    def test_transactions_scan_and_pubsub(self):
        r = redis.Redis(host=HOST, port=PORT, **APP)
        other = redis.Redis(host=HOST, port=PORT, **APP)
        # redis-py's pipeline is a MULTI/EXEC transaction by default.
        pipe = r.pipeline()
        pipe.set("plain:py:tx", 1).incr("plain:py:tx").get("plain:py:tx")
        self.assertEqual(pipe.execute(), [True, 2, b"2"])
        # WATCH: another client's write between WATCH and EXEC aborts it.
        with r.pipeline() as p:
            p.watch("plain:py:tx")
            other.set("plain:py:tx", 10)
            p.multi()
            p.incr("plain:py:tx")
            with self.assertRaises(redis.exceptions.WatchError):
                p.execute()
        # r.transaction retries until EXEC runs.
        attempts = []

        def bump(p):
            attempts.append(1)
            value = int(p.get("plain:py:tx"))
            if len(attempts) == 1:
                other.set("plain:py:tx", value + 100)  # forces one retry
            p.multi()
            p.set("plain:py:tx", value + 1)

        r.transaction(bump, "plain:py:tx")
        self.assertEqual(len(attempts), 2)
        self.assertEqual(r.get("plain:py:tx"), b"111")

        for i in range(50):
            r.set(f"plain:py:scan:{i}", "v")
        self.assertEqual(len(set(r.scan_iter(match="plain:py:scan:*", count=10))), 50)

        ps = r.pubsub()
        ps.subscribe("plain:py:chan")
        self.assertEqual(ps.get_message(timeout=5)["type"], "subscribe")
        self.assertEqual(other.publish("plain:py:chan", "hello"), 1)
        message = ps.get_message(timeout=5)
        self.assertEqual((message["type"], message["channel"], message["data"]),
                         ("message", b"plain:py:chan", b"hello"))
        ps.close()

    def test_a_wrong_password_is_refused(self):
        r = redis.Redis(host=HOST, port=PORT, username="app", password="no")
        # redis-py 4.3 raises Redis 7's WRONGPASS as a ResponseError (later ones as an
        # AuthenticationError): either way, with Redis's text.
        with self.assertRaisesRegex(
            (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError), "WRONGPASS"
        ):
            r.ping()

    def test_over_tls(self):
        r = redis.Redis(host=HOST, port=TLS_PORT, ssl=True, ssl_ca_certs=CA, **APP)
        self.assertTrue(r.set("plain:py:tls", "secure"))
        self.assertEqual(r.get("plain:py:tls"), b"secure")
        big = b"x" * 100000  # several TLS records each way
        self.assertTrue(r.set("plain:py:big", big))
        self.assertEqual(r.get("plain:py:big"), big)
        # The same users and ACL over TLS.
        with self.assertRaises(redis.exceptions.NoPermissionError):
            r.flushall()
        with self.assertRaises(redis.exceptions.NoPermissionError):
            r.set("ro:py", "x")
        wrong = redis.Redis(host=HOST, port=TLS_PORT, ssl=True, ssl_ca_certs=CA,
                            username="app", password="no")
        with self.assertRaisesRegex(
            (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError), "WRONGPASS"
        ):
            wrong.ping()

    def test_tls_with_an_untrusted_ca_fails(self):
        r = redis.Redis(host=HOST, port=TLS_PORT, ssl=True, ssl_cert_reqs="required", **APP)
        with self.assertRaises(redis.exceptions.ConnectionError):
            r.ping()


if __name__ == "__main__":
    unittest.main(verbosity=2)
