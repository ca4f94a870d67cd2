// node-redis and ioredis, unmodified, against a running corral (started by
// tests/integration/clients_test.cc, which passes its ports and CA in the environment): users and
// their ACL errors, pipelines, and TLS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createClient } from 'redis';
import Redis from 'ioredis';

const host = '127.0.0.1';
const port = Number(process.env.CORRAL_RESP_PORT);
const tlsPort = Number(process.env.CORRAL_RESP_TLS_PORT);
const ca = fs.readFileSync(process.env.CORRAL_TLS_CA);
// User "app": reads and writes plain:*, only reads ro:*, no dangerous commands (clients_test.cc).
const app = { username: 'app', password: 'app-pw' };

async function nodeRedis(options) {
  const client = createClient(options);
  client.on('error', () => {}); // connection errors surface through the awaited calls
  await client.connect();
  return client;
}

test('node-redis: an ACL user runs its commands and gets NOPERM for the rest', async () => {
  const c = await nodeRedis({ socket: { host, port }, ...app });
  try {
    assert.equal(await c.set('plain:node', 'v1'), 'OK');
    assert.equal(await c.get('plain:node'), 'v1');
    assert.equal(await c.incr('plain:node:n'), 1);
    assert.deepEqual(await c.mGet(['plain:node', 'plain:none']), ['v1', null]);
    // Commands issued together are pipelined by node-redis: each gets its own answer, in order.
    const keys = Array.from({ length: 200 }, (_, i) => `plain:node:${i}`);
    await Promise.all(keys.map((k, i) => c.set(k, String(i))));
    assert.deepEqual(await Promise.all(keys.map((k) => c.get(k))), keys.map((_, i) => String(i)));
    assert.equal(await c.get('ro:node'), null);
    await assert.rejects(c.set('ro:node', 'x'), /NOPERM/);
    await assert.rejects(c.get('order:1'), /NOPERM/);
    await assert.rejects(c.flushAll(), /NOPERM .*'flushall'/);
    assert.equal(await c.sendCommand(['ACL', 'WHOAMI']), 'app');
  } finally {
    c.destroy();
  }
});

test('node-redis: a wrong password is refused with WRONGPASS', async () => {
  await assert.rejects(
    nodeRedis({ socket: { host, port, reconnectStrategy: false }, username: 'app', password: 'no' }),
    /WRONGPASS/,
  );
});

test('node-redis: over TLS', async () => {
  const c = await nodeRedis({ socket: { host, port: tlsPort, tls: true, ca }, ...app });
  try {
    assert.equal(await c.set('plain:node:tls', 'secure'), 'OK');
    assert.equal(await c.get('plain:node:tls'), 'secure');
    const big = 'x'.repeat(100000); // several TLS records each way
    assert.equal(await c.set('plain:node:big', big), 'OK');
    assert.equal(await c.get('plain:node:big'), big);
    // The same users and ACL over TLS.
    await assert.rejects(c.flushAll(), /NOPERM/);
    await assert.rejects(c.set('ro:node', 'x'), /NOPERM/);
  } finally {
    c.destroy();
  }
});

test('ioredis: an ACL user, a pipeline and NOPERM', async () => {
  const r = new Redis({ host, port, ...app, lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await r.connect();
    assert.equal(await r.set('plain:io', 'v'), 'OK');
    assert.equal(await r.get('plain:io'), 'v');
    const results = await r.pipeline().set('plain:io:a', '1').incr('plain:io:a').get('plain:io:a').exec();
    assert.deepEqual(results, [[null, 'OK'], [null, 2], [null, '2']]);
    await assert.rejects(r.set('ro:io', 'x'), /NOPERM/);
    await assert.rejects(r.flushall(), /NOPERM/);
    assert.equal(await r.call('ACL', 'WHOAMI'), 'app');
  } finally {
    r.disconnect();
  }
});

test('ioredis: over TLS', async () => {
  const r = new Redis({ host, port: tlsPort, tls: { ca }, ...app, lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await r.connect();
    assert.equal(await r.set('plain:io:tls', 'secure'), 'OK');
    assert.equal(await r.get('plain:io:tls'), 'secure');
    await assert.rejects(r.get('order:1'), /NOPERM/);
  } finally {
    r.disconnect();
  }
});
