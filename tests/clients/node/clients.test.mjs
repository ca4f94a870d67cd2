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

// What a service does besides reads: transactions (and WATCH's optimistic lock), key scans, and
// pub/sub; with node-redis's default protocol and with RESP3.
for (const RESP of [2, 3]) {
  test(`node-redis (RESP${RESP}): MULTI/EXEC, WATCH, SCAN and pub/sub`, async () => {
    const c = await nodeRedis({ socket: { host, port }, ...app, RESP });
    const other = await nodeRedis({ socket: { host, port }, ...app, RESP });
    const sub = await nodeRedis({ socket: { host, port }, ...app, RESP });
    const k = `plain:node:tx${RESP}`;
    try {
      assert.deepEqual(await c.multi().set(k, '1').incr(k).get(k).exec(), ['OK', 2, '2']);
      // WATCH: another client's write between WATCH and EXEC makes EXEC fail.
      await c.watch(k);
      await other.set(k, '10');
      await assert.rejects(c.multi().incr(k).exec(), /watched keys has been changed/);
      await c.watch(k);
      assert.deepEqual(await c.multi().incr(k).exec(), [11]);

      const scanned = [];
      for (let i = 0; i < 50; i++) await c.set(`plain:node:scan${RESP}:${i}`, 'v');
      for await (const keys of c.scanIterator({ MATCH: `plain:node:scan${RESP}:*`, COUNT: 10 })) {
        scanned.push(...keys);
      }
      assert.equal(new Set(scanned).size, 50);

      const got = new Promise((resolve) => {
        sub.subscribe(`plain:chan${RESP}`, (message, channel) => resolve([channel, message]));
      });
      // The subscription is in place once PUBSUB counts it.
      for (let i = 0; i < 100; i++) {
        const [, n] = await c.sendCommand(['PUBSUB', 'NUMSUB', `plain:chan${RESP}`]);
        if (n === 1) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(await c.publish(`plain:chan${RESP}`, 'hello'), 1);
      assert.deepEqual(await got, [`plain:chan${RESP}`, 'hello']);
    } finally {
      c.destroy();
      other.destroy();
      sub.destroy();
    }
  });
}

test('ioredis: MULTI/EXEC, WATCH, SCAN and pub/sub', async () => {
  const options = { host, port, ...app, lazyConnect: true, maxRetriesPerRequest: 0 };
  const r = new Redis(options);
  const other = new Redis(options);
  const sub = new Redis(options);
  try {
    await Promise.all([r.connect(), other.connect(), sub.connect()]);
    const k = 'plain:io:tx';
    assert.deepEqual(await r.multi().set(k, '1').incr(k).exec(), [[null, 'OK'], [null, 2]]);
    await r.watch(k);
    await other.set(k, '10');
    assert.equal(await r.multi().incr(k).exec(), null); // aborted: a watched key changed

    for (let i = 0; i < 50; i++) await r.set(`plain:io:scan:${i}`, 'v');
    const scanned = new Set();
    await new Promise((resolve, reject) => {
      const stream = r.scanStream({ match: 'plain:io:scan:*', count: 10 });
      stream.on('data', (keys) => keys.forEach((key) => scanned.add(key)));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    assert.equal(scanned.size, 50);

    assert.equal(await sub.subscribe('plain:io:chan'), 1);
    const got = new Promise((resolve) => sub.on('message', (channel, message) => resolve([channel, message])));
    assert.equal(await r.publish('plain:io:chan', 'hello'), 1);
    assert.deepEqual(await got, ['plain:io:chan', 'hello']);
  } finally {
    r.disconnect();
    other.disconnect();
    sub.disconnect();
  }
});
