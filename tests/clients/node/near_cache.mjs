// node-redis's near cache (clientSideCache, RESP3, CLIENT TRACKING) over a read-through key,
// invalidated by the database: run by tests/integration/clients_pg_test.cc with corral's port,
// the key, its users row id and the primary's conninfo in the environment. Each round reads the
// key (from corral, then from the near cache), commits an UPDATE of the row on the primary through
// psql, and waits for corral's invalidation push to drop the cached key; the next read must be
// the new version. Prints one "[figures]" line with the push's delay; exits non-zero on a failure.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { createClient } from 'redis';

const port = Number(process.env.CORRAL_RESP_PORT);
const key = process.env.CORRAL_KEY;
const id = Number(process.env.CORRAL_ROW_ID);
const rounds = Number(process.env.CORRAL_ROUNDS ?? 20);

// One psql session: an UPDATE ... RETURNING prints its row once the transaction has committed
// (autocommit; psql prints when the server is ready for the next query).
const psql = spawn('psql', [process.env.CORRAL_PG_PRIMARY, '-qAtX', '-v', 'ON_ERROR_STOP=1'], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
const lines = readline.createInterface({ input: psql.stdout });
const answers = [];
let waiting = null;
lines.on('line', (line) => {
  const at = process.hrtime.bigint();
  if (waiting) {
    const w = waiting;
    waiting = null;
    w([line, at]);
  } else {
    answers.push([line, at]);
  }
});
function update() {
  const sent = process.hrtime.bigint();
  const answered = new Promise((resolve) => {
    if (answers.length) resolve(answers.shift());
    else waiting = resolve;
  });
  psql.stdin.write(`UPDATE users SET version = version + 1 WHERE id = ${id} RETURNING version;\n`);
  return { sent, answered };
}

const ms = (a, b) => Number(a - b) / 1e6;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p99 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))];

const client = createClient({ socket: { host: '127.0.0.1', port }, RESP: 3, clientSideCache: { ttl: 0, maxEntries: 0 } });
client.on('error', () => {});
await client.connect();
const cache = client.clientSideCache;
const fromSend = [];
const fromCommit = [];
let staleRereads = 0;
const untilNew = [];  // from the commit to the first read of the new row, ms
// Resolves with the time the near cache drops `key` (corral's push), within 5 s.
function invalidation() {
  return new Promise((resolve, reject) => {
    const onInvalidate = (k) => {
      if (k === null || k.toString() !== key) return;
      clearTimeout(timer);
      cache.off('invalidate', onInvalidate);
      resolve(process.hrtime.bigint());
    };
    const timer = setTimeout(() => {
      cache.off('invalidate', onInvalidate);
      reject(new Error(`no invalidation of ${key} within 5 s`));
    }, 5000);
    cache.on('invalidate', onInvalidate);
  });
}
try {
  for (let i = 0; i < rounds; i++) {
    const v1 = await client.get(key);
    assert.ok(v1 !== null, `${key} has no row`);
    const hits = cache.stats().hitCount;
    assert.equal(await client.get(key), v1);
    assert.equal(cache.stats().hitCount, hits + 1, 'the second read did not come from the near cache');

    const { sent, answered } = update();
    const [[version, committed], at] = await Promise.all([answered, invalidation()]);
    fromSend.push(ms(at, sent));
    fromCommit.push(ms(at, committed));
    assert.equal(version, String(Number(v1) + 1));
    // The near cache dropped it: the next read goes to corral. A replica that has not replayed
    // the UPDATE yet may still answer the old row; corral serves it as stale and pushes an
    // invalidation right after it, so the near cache does not keep it, and a read after that
    // comes back to corral again.
    for (;;) {
      const pushed = invalidation();
      const v = await client.get(key);
      if (v === version) {
        pushed.catch(() => {});
        break;
      }
      assert.equal(v, v1, 'neither the old row nor the new one');
      ++staleRereads;
      await pushed;
      await new Promise((r) => setTimeout(r, 5)); // then ask again, as an application would later
    }
    untilNew.push(ms(process.hrtime.bigint(), committed));
    // The new row is cached near again (once any push for an older answer has come in, it is
    // not dropped any more): a read is answered from the near cache, with the new row.
    let cachedNear = false;
    for (let tries = 0; tries < 200 && !cachedNear; tries++) {
      const h = cache.stats().hitCount;
      assert.equal(await client.get(key), version);
      cachedNear = cache.stats().hitCount === h + 1;
      if (!cachedNear) await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(cachedNear, 'the new row is never cached near');
  }
  console.log(
    `[figures] node-redis near cache over ${key}: ${rounds} UPDATEs, each dropped by corral's push; ` +
      `delay from the UPDATE's send p50 ${median(fromSend).toFixed(2)} ms, max ${Math.max(...fromSend).toFixed(2)} ms; ` +
      `from psql's answer (commit) p50 ${median(fromCommit).toFixed(2)} ms, p99 ${p99(fromCommit).toFixed(2)} ms; ` +
      `${staleRereads} rereads answered the old row (stale: no replica was known to have replayed ` +
      `the UPDATE yet), each pushed away at once; the new row read p50 ${median(untilNew).toFixed(1)} ms ` +
      `after the commit, max ${Math.max(...untilNew).toFixed(1)} ms`,
  );
} finally {
  client.destroy();
  psql.stdin.end();
}
