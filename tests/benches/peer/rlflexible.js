// The rate-limit bench's peer: rate-limiter-flexible's
// `RateLimiterRedis.consume` on one ioredis client (its defaults), run the
// way `measure` runs the Rust sides: CONCURRENCY loops sharing the client
// over KEYS keys (key i % KEYS for call i), a warm-up of OPS / 10 calls
// (at least CONCURRENCY) first, then OPS timed calls. Prints one JSON line:
// {"ops_per_sec", "p50_us", "p99_us"}. A rejected consume fails the run
// (the quota is far above the load, as in every bench row).
//
// Environment: REDIS_URL, POINTS and DURATION (the quota: POINTS per
// DURATION seconds), KEY_PREFIX, CONCURRENCY, KEYS, OPS.
'use strict';

const Redis = require('ioredis');
const { RateLimiterRedis } = require('rate-limiter-flexible');

const env = (name, fallback) => process.env[name] ?? fallback;
const int = (name, fallback) => {
  const v = Number.parseInt(env(name, String(fallback)), 10);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer`);
  return v;
};

async function main() {
  const url = env('REDIS_URL', 'redis://127.0.0.1:6379');
  const concurrency = int('CONCURRENCY', 50);
  const keys = int('KEYS', 1000);
  const ops = int('OPS', 60000);
  const redis = new Redis(url);
  const limiter = new RateLimiterRedis({
    storeClient: redis,
    keyPrefix: env('KEY_PREFIX', 'rlflx'),
    points: int('POINTS', 1000),
    duration: int('DURATION', 1),
  });
  const run = async (total, latencies) => {
    let next = 0;
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= total) return;
        const start = process.hrtime.bigint();
        // rejects (with a RateLimiterRes) when over the quota: the run fails
        await limiter.consume(`k${i % keys}`);
        if (latencies) latencies[i] = Number(process.hrtime.bigint() - start) / 1000;
      }
    };
    const started = process.hrtime.bigint();
    await Promise.all(Array.from({ length: concurrency }, worker));
    return Number(process.hrtime.bigint() - started) / 1e9;
  };
  await run(Math.max(Math.floor(ops / 10), concurrency), null);
  const latencies = new Float64Array(ops);
  const secs = await run(ops, latencies);
  latencies.sort();
  console.log(JSON.stringify({
    ops_per_sec: ops / secs,
    p50_us: latencies[Math.floor(ops / 2)],
    p99_us: latencies[Math.floor((ops * 99) / 100)],
  }));
  redis.disconnect();
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
