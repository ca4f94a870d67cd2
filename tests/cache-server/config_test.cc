// Tests for cache-server/config: defaults, the SPEC.md example, optional fields, and that every
// validation rule fails with the exact JSON path of the offending field.
#include "cache-server/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "cache-server/maxmemory_policy.h"
#include "tests/cache-server/config_walk.h"

namespace corral::server {
namespace {

using ::testing::HasSubstr;

// Single quotes read better than escaped double quotes in C++ literals; none of the cases need a
// literal single quote.
std::string J(std::string text) {
  std::replace(text.begin(), text.end(), '\'', '"');
  return text;
}

// A postgres section with two replicas, for tests about other parts.
const std::string kPg = "'postgres':{'primary':'P','replicas':['R0','R1']}";

// The error ParseConfig must throw for `json`.
ConfigError ErrorOf(const std::string& json) {
  try {
    ParseConfig(json);
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << json;
  return ConfigError("<accepted>", "");
}

TEST(ConfigTest, DefaultThreadsIsHalfTheCoresAtLeastOne) {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  EXPECT_EQ(DefaultThreads(), std::max(1, cores / 2));
  EXPECT_GE(DefaultThreads(), 1);
}

TEST(ConfigTest, EmptyObjectGivesDefaults) {
  Config c = ParseConfig("{}");
  EXPECT_EQ(c.resp.host, "127.0.0.1");
  EXPECT_EQ(c.resp.port, 6380);
  EXPECT_EQ(c.http.host, "127.0.0.1");
  EXPECT_EQ(c.http.port, 8080);
  EXPECT_EQ(c.threads, DefaultThreads());
  EXPECT_EQ(c.memory.max_bytes, size_t{256} << 20);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_FALSE(c.postgres.has_value());
  EXPECT_TRUE(c.namespaces.empty());
  EXPECT_EQ(c.lease.wait_timeout_ms, 2000);
  EXPECT_EQ(c.lease.lease_ttl_ms, 10000);
  EXPECT_EQ(c.lease.error_holdoff_ms, 1000);
  EXPECT_EQ(c.shedding.max_pending_loads, 10000);
  EXPECT_EQ(c.shedding.max_clients, 10000);
  EXPECT_EQ(c.resp_options.requirepass, "");
  EXPECT_EQ(c.resp_options.proto_max_bulk_len, 512LL << 20);
  EXPECT_EQ(c.resp_options.max_query_buffer, 1LL << 30);
  EXPECT_EQ(c.resp_options.idle_timeout_s, 0);
  EXPECT_EQ(c.http_options.max_header_bytes, 8192);
  EXPECT_EQ(c.http_options.max_body_bytes, 1 << 20);
  EXPECT_EQ(c.http_options.read_timeout_ms, 10000);
  EXPECT_EQ(c.http_options.idle_timeout_ms, 60000);
  EXPECT_EQ(c.http_options.max_pipelined, 16);
  EXPECT_EQ(c.shutdown.drain_grace_ms, 0);
  EXPECT_EQ(c.shutdown.timeout_ms, 5000);
}

TEST(ConfigTest, ShutdownSection) {
  Config c = ParseConfig(J("{'shutdown': {'drain_grace_ms': 5000, 'timeout_ms': 0}}"));
  EXPECT_EQ(c.shutdown.drain_grace_ms, 5000);
  EXPECT_EQ(c.shutdown.timeout_ms, 0);
}

// Keyspace notifications from the config file, with Redis's letters (CONFIG SET changes them).
TEST(ConfigTest, NotifyKeyspaceEvents) {
  EXPECT_EQ(ParseConfig("{}").resp_options.notify_keyspace_events, "") << "off by default";
  Config c = ParseConfig(J("{'resp': {'notify_keyspace_events': 'KEA'}}"));
  EXPECT_EQ(c.resp_options.notify_keyspace_events, "KEA");
  ConfigError bad = ErrorOf(J("{'resp': {'notify_keyspace_events': 'KEQ'}}"));
  EXPECT_EQ(bad.path, "resp.notify_keyspace_events");
  EXPECT_NE(bad.problem.find("no event class"), std::string::npos) << bad.problem;
  EXPECT_EQ(ErrorOf(J("{'resp': {'notify_keyspace_events': 1}}")).path,
            "resp.notify_keyspace_events");
}

TEST(ConfigTest, RedisSection) {
  EXPECT_FALSE(ParseConfig("{}").redis) << "no tier unless asked";
  Config c =
      ParseConfig(J("{'redis':{'nodes':['127.0.0.1:7000','redis.svc:6379'],'cluster':true,"
                    "'prefix':'x:','timeout_ms':50,'l1_ttl_ms':100,'user':'u','password':'p'}}"));
  ASSERT_TRUE(c.redis);
  EXPECT_EQ(c.redis->nodes, (std::vector<std::string>{"127.0.0.1:7000", "redis.svc:6379"}));
  EXPECT_EQ(c.redis->cluster, "true");
  EXPECT_EQ(c.redis->prefix, "x:");
  EXPECT_EQ(c.redis->timeout_ms, 50);
  EXPECT_EQ(c.redis->l1_ttl_ms, 100);
  EXPECT_EQ(c.redis->user, "u");
  EXPECT_EQ(c.redis->password, "p");
  Config d = ParseConfig(J("{'redis':{'nodes':['127.0.0.1:6379'],'user':null}}"));
  EXPECT_EQ(d.redis->cluster, "auto");
  EXPECT_EQ(d.redis->prefix, "corral:");
  EXPECT_EQ(d.redis->timeout_ms, 100);
  EXPECT_FALSE(d.redis->user);
  EXPECT_FALSE(d.redis->password);
  EXPECT_EQ(ErrorOf(J("{'redis':{}}")).path, "redis.nodes");
  EXPECT_EQ(ErrorOf(J("{'redis':{'nodes':['127.0.0.1:6379'],'user':'u'}}")).path, "redis.user");
  EXPECT_EQ(ErrorOf(J("{'redis':{'nodes':['a:1','b:0']}}")).path, "redis.nodes[1]");
  EXPECT_EQ(ErrorOf(J("{'redis':{'nodes':['a:1'],'extra':1}}")).path, "redis.extra");
}

TEST(ConfigTest, PostgresDefaults) {
  Config c = ParseConfig(J("{" + kPg + "}"));
  ASSERT_TRUE(c.postgres.has_value());
  const PostgresConfig& pg = *c.postgres;
  EXPECT_EQ(pg.primary, "P");
  EXPECT_EQ(pg.replicas, (std::vector<std::string>{"R0", "R1"}));
  ASSERT_EQ(pg.pools.size(), 1u);
  const PoolConfig& pool = pg.pools.at("default");
  EXPECT_EQ(pool.replicas, (std::vector<size_t>{0, 1}));  // "all", as indices
  EXPECT_EQ(pool.connections, 8);
  EXPECT_EQ(pool.routing, pg::Routing::kRoundRobin);
  EXPECT_EQ(pg.statement_timeout_ms, 1000);
  EXPECT_EQ(pg.max_replica_lag_ms, 5000);
  EXPECT_EQ(pg.health_check_interval_ms, 1000);
  EXPECT_FALSE(pg.fallback_to_primary);
  EXPECT_EQ(pg.invalidation_channel, "corral_invalidate");
  EXPECT_TRUE(pg.prepared_statements);
}

TEST(ConfigTest, PrimaryWithoutReplicasNeedsFallback) {
  ConfigError e = ErrorOf(J("{'postgres':{'primary':'P'}}"));
  EXPECT_EQ(e.path, "postgres.replicas");
  EXPECT_THAT(e.problem, HasSubstr("fallback_to_primary"));

  Config c = ParseConfig(J("{'postgres':{'primary':'P','fallback_to_primary':true}}"));
  EXPECT_TRUE(c.postgres->replicas.empty());
  EXPECT_TRUE(c.postgres->pools.at("default").replicas.empty());
}

TEST(ConfigTest, NamespaceDefaults) {
  Config c = ParseConfig(J("{" + kPg + ",'namespaces':{'n':{'query':'SELECT $1'}}}"));
  const NamespaceConfig& ns = c.namespaces.at("n");
  EXPECT_EQ(ns.name, "n");
  EXPECT_EQ(ns.query, "SELECT $1");
  EXPECT_EQ(ns.batch_query, "");
  EXPECT_EQ(ns.pool, "default");
  EXPECT_EQ(ns.ttl_ms, 60000);
  EXPECT_DOUBLE_EQ(ns.ttl_jitter, 0.1);
  EXPECT_EQ(ns.stale_ms, 300000);
  EXPECT_EQ(ns.negative_ttl_ms, 5000);
  EXPECT_EQ(ns.max_inflight_loads, 64);
  EXPECT_DOUBLE_EQ(ns.max_loads_per_s, 0);
  EXPECT_FALSE(ns.blocked);
  EXPECT_EQ(ns.batch_max, 64);
  EXPECT_EQ(ns.batch_window_us, 200);
}

// Verbatim from SPEC.md "Configuration (JSON)", with non-default values checked where the example
// has them.
constexpr const char* kSpecExample = R"json({
  "listen": { "resp": "127.0.0.1:6380", "http": "127.0.0.1:8080" },
  "threads": 2,
  "memory": { "max_bytes": 268435456 },
  "postgres": {
    "primary": "host=127.0.0.1 port=5432 dbname=app user=app",
    "replicas": ["host=127.0.0.1 port=5433 dbname=app user=app"],
    "pools": { "default": { "replicas": "all", "connections": 8 } },
    "statement_timeout_ms": 1000,
    "max_replica_lag_ms": 5000,
    "fallback_to_primary": false,
    "invalidation_channel": "corral_invalidate"
  },
  "namespaces": {
    "user": {
      "query": "SELECT row_to_json(u)::text FROM users u WHERE u.id = $1",
      "batch_query": "SELECT u.id::text, row_to_json(u)::text FROM users u WHERE u.id = ANY($1::bigint[])",
      "pool": "default",
      "ttl_ms": 60000, "ttl_jitter": 0.1,
      "stale_ms": 300000, "negative_ttl_ms": 5000,
      "max_inflight_loads": 64, "max_loads_per_s": 0, "blocked": false
    }
  },
  "lease": { "wait_timeout_ms": 2000, "lease_ttl_ms": 10000, "error_holdoff_ms": 1000 },
  "shedding": { "max_pending_loads": 10000, "max_clients": 10000 }
})json";

TEST(ConfigTest, SpecExampleParses) {
  Config c = ParseConfig(kSpecExample);
  EXPECT_EQ(FormatHostPort(c.resp), "127.0.0.1:6380");
  EXPECT_EQ(FormatHostPort(c.http), "127.0.0.1:8080");
  EXPECT_EQ(c.threads, 2);
  EXPECT_EQ(c.memory.max_bytes, 268435456u);
  ASSERT_TRUE(c.postgres.has_value());
  EXPECT_EQ(c.postgres->primary, "host=127.0.0.1 port=5432 dbname=app user=app");
  ASSERT_EQ(c.postgres->replicas.size(), 1u);
  EXPECT_EQ(c.postgres->replicas[0], "host=127.0.0.1 port=5433 dbname=app user=app");
  ASSERT_EQ(c.postgres->pools.size(), 1u);
  EXPECT_EQ(c.postgres->pools.at("default").replicas, (std::vector<size_t>{0}));
  EXPECT_EQ(c.postgres->pools.at("default").connections, 8);
  EXPECT_EQ(c.postgres->statement_timeout_ms, 1000);
  EXPECT_EQ(c.postgres->max_replica_lag_ms, 5000);
  EXPECT_FALSE(c.postgres->fallback_to_primary);
  EXPECT_EQ(c.postgres->invalidation_channel, "corral_invalidate");
  ASSERT_EQ(c.namespaces.size(), 1u);
  const NamespaceConfig& user = c.namespaces.at("user");
  EXPECT_EQ(user.name, "user");
  EXPECT_EQ(user.query, "SELECT row_to_json(u)::text FROM users u WHERE u.id = $1");
  EXPECT_THAT(user.batch_query, HasSubstr("ANY($1::bigint[])"));
  EXPECT_EQ(user.pool, "default");
  EXPECT_EQ(user.ttl_ms, 60000);
  EXPECT_DOUBLE_EQ(user.ttl_jitter, 0.1);
  EXPECT_EQ(user.stale_ms, 300000);
  EXPECT_EQ(user.negative_ttl_ms, 5000);
  EXPECT_EQ(user.max_inflight_loads, 64);
  EXPECT_DOUBLE_EQ(user.max_loads_per_s, 0);
  EXPECT_FALSE(user.blocked);
  EXPECT_EQ(c.lease.wait_timeout_ms, 2000);
  EXPECT_EQ(c.lease.lease_ttl_ms, 10000);
  EXPECT_EQ(c.lease.error_holdoff_ms, 1000);
  EXPECT_EQ(c.shedding.max_pending_loads, 10000);
  EXPECT_EQ(c.shedding.max_clients, 10000);
}

TEST(ConfigTest, EveryOptionalFieldIsRead) {
  Config c = ParseConfig(J(R"({
    'listen': {'resp': '[::1]:0', 'http': ':9090'},
    'threads': 256, 'memory': {'max_bytes': 1e9}, 'log_level': 'debug',
    'postgres': {
      'primary': 'P', 'replicas': ['R0', 'R1', 'R2'],
      'pools': {'fast': {'replicas': [2, 0], 'connections': 3, 'routing': 'least_loaded',
                         'max_inflight_loads': 6},
                'none': {'replicas': []}},
      'statement_timeout_ms': 0, 'max_replica_lag_ms': 7, 'health_check_interval_ms': 250,
      'fallback_to_primary': true, 'invalidation_channel': 'inv', 'prepared_statements': false},
    'namespaces': {'u': {'query': 'q $1', 'batch_query': 'b $1', 'pool': 'fast', 'ttl_ms': 5,
                         'ttl_jitter': 1, 'stale_ms': 0, 'negative_ttl_ms': 0,
                         'max_inflight_loads': 1, 'max_loads_per_s': 2.5, 'blocked': true,
                         'batch_max': 9, 'batch_window_us': 0}},
    'lease': {'wait_timeout_ms': 0, 'lease_ttl_ms': 1, 'error_holdoff_ms': 0},
    'shedding': {'max_pending_loads': 1, 'max_clients': 2},
    'resp': {'requirepass': 'pw', 'proto_max_bulk_len': 10, 'max_query_buffer': 11,
             'idle_timeout_s': 12},
    'http': {'max_header_bytes': 13, 'max_body_bytes': 0, 'read_timeout_ms': 15,
             'idle_timeout_ms': 16, 'max_pipelined': 17}})"));
  EXPECT_EQ(c.resp.host, "::1");
  EXPECT_EQ(c.resp.port, 0);
  EXPECT_EQ(c.http.host, "0.0.0.0");
  EXPECT_EQ(c.http.port, 9090);
  EXPECT_EQ(c.threads, 256);
  EXPECT_EQ(c.memory.max_bytes, 1000000000u);
  EXPECT_EQ(c.log_level, "debug");
  const PostgresConfig& pg = *c.postgres;
  ASSERT_EQ(pg.pools.size(), 2u);
  EXPECT_EQ(pg.pools.at("fast").replicas, (std::vector<size_t>{2, 0}));
  EXPECT_EQ(pg.pools.at("fast").connections, 3);
  EXPECT_EQ(pg.pools.at("fast").routing, pg::Routing::kLeastLoaded);
  EXPECT_EQ(pg.pools.at("fast").max_inflight_loads, 6);
  EXPECT_EQ(pg.pools.at("none").max_inflight_loads, 0);  // default: no bound beyond connections
  EXPECT_TRUE(pg.pools.at("none").replicas.empty());     // allowed: fallback_to_primary
  EXPECT_EQ(pg.statement_timeout_ms, 0);
  EXPECT_EQ(pg.max_replica_lag_ms, 7);
  EXPECT_EQ(pg.health_check_interval_ms, 250);
  EXPECT_TRUE(pg.fallback_to_primary);
  EXPECT_EQ(pg.invalidation_channel, "inv");
  EXPECT_FALSE(pg.prepared_statements);
  const NamespaceConfig& u = c.namespaces.at("u");
  EXPECT_EQ(u.batch_query, "b $1");
  EXPECT_EQ(u.pool, "fast");
  EXPECT_EQ(u.ttl_ms, 5);
  EXPECT_DOUBLE_EQ(u.ttl_jitter, 1);
  EXPECT_EQ(u.stale_ms, 0);
  EXPECT_EQ(u.negative_ttl_ms, 0);
  EXPECT_EQ(u.max_inflight_loads, 1);
  EXPECT_DOUBLE_EQ(u.max_loads_per_s, 2.5);
  EXPECT_TRUE(u.blocked);
  EXPECT_EQ(u.batch_max, 9);
  EXPECT_EQ(u.batch_window_us, 0);
  EXPECT_EQ(c.lease.wait_timeout_ms, 0);
  EXPECT_EQ(c.lease.lease_ttl_ms, 1);
  EXPECT_EQ(c.lease.error_holdoff_ms, 0);
  EXPECT_EQ(c.shedding.max_pending_loads, 1);
  EXPECT_EQ(c.shedding.max_clients, 2);
  EXPECT_EQ(c.resp_options.requirepass, "pw");
  EXPECT_EQ(c.resp_options.proto_max_bulk_len, 10);
  EXPECT_EQ(c.resp_options.max_query_buffer, 11);
  EXPECT_EQ(c.resp_options.idle_timeout_s, 12);
  EXPECT_EQ(c.http_options.max_header_bytes, 13);
  EXPECT_EQ(c.http_options.max_body_bytes, 0);
  EXPECT_EQ(c.http_options.read_timeout_ms, 15);
  EXPECT_EQ(c.http_options.idle_timeout_ms, 16);
  EXPECT_EQ(c.http_options.max_pipelined, 17);
}

// memory.policy: the two algorithms, and Redis's noeviction (CLOCK's bookkeeping, no eviction);
// each reported to Redis tools by the nearest Redis name.
TEST(ConfigTest, MemoryPolicyChoices) {
  const Config defaults = ParseConfig("{}");
  EXPECT_EQ(defaults.memory.policy, lease::EvictionPolicy::kTinyLfu);
  EXPECT_TRUE(defaults.memory.evict);
  EXPECT_EQ(NameOf(DefaultMaxmemoryPolicy(defaults.memory)), "allkeys-lfu");
  const Config clock = ParseConfig(J("{'memory': {'policy': 'clock'}}"));
  EXPECT_EQ(clock.memory.policy, lease::EvictionPolicy::kClock);
  EXPECT_TRUE(clock.memory.evict);
  EXPECT_EQ(NameOf(DefaultMaxmemoryPolicy(clock.memory)), "allkeys-lru");
  const Config none = ParseConfig(J("{'memory': {'policy': 'noeviction'}}"));
  EXPECT_EQ(none.memory.policy, lease::EvictionPolicy::kClock);
  EXPECT_FALSE(none.memory.evict);
  EXPECT_EQ(NameOf(DefaultMaxmemoryPolicy(none.memory)), "noeviction");
  EXPECT_EQ(ErrorOf(J("{'memory': {'policy': 'allkeys-lru'}}")).path, "memory.policy");
}

// Redis's names, any case, in Redis's order; anything else is refused.
TEST(ConfigTest, MaxmemoryPolicyNames) {
  for (size_t i = 0; i < std::size(kMaxmemoryPolicyNames); ++i) {
    EXPECT_EQ(ParseMaxmemoryPolicy(kMaxmemoryPolicyNames[i]), static_cast<MaxmemoryPolicy>(i));
  }
  EXPECT_EQ(ParseMaxmemoryPolicy("NoEviction"), MaxmemoryPolicy::kNoEviction);
  EXPECT_FALSE(ParseMaxmemoryPolicy("noevictio").has_value());
  EXPECT_FALSE(ParseMaxmemoryPolicy("lru").has_value());
  EXPECT_FALSE(Evicts(MaxmemoryPolicy::kNoEviction));
  EXPECT_TRUE(Evicts(MaxmemoryPolicy::kVolatileTtl));
}

TEST(ConfigTest, AddressForms) {
  auto resp = [](const std::string& address) {
    return ParseConfig(J("{'listen':{'resp':'" + address + "'}}")).resp;
  };
  EXPECT_EQ(resp("10.0.0.1:1").host, "10.0.0.1");
  EXPECT_EQ(resp("10.0.0.1:1").port, 1);
  EXPECT_EQ(resp("0.0.0.0:65535").port, 65535);
  EXPECT_EQ(resp("[fe80::1]:6380").host, "fe80::1");
  EXPECT_EQ(resp(":0").host, "0.0.0.0");
  EXPECT_EQ(resp(":0").port, 0);
  EXPECT_EQ(FormatHostPort(resp("[::1]:7")), "[::1]:7");
  EXPECT_EQ(FormatHostPort(resp(":7")), "0.0.0.0:7");
  EXPECT_EQ(FormatHostPort(*ParseHostPort("[::ffff:1.2.3.4]:9")), "[::ffff:1.2.3.4]:9");
}

TEST(ConfigTest, BadAddressesNameTheField) {
  for (const char* address :
       {"'127.0.0.1'", "'127.0.0.1:'", "'127.0.0.1:65536'", "'1.2.3.4:99999999'", "'1.2.3.4:-1'",
        "'1.2.3.4:12a'", "'1.2.3.4: 1'", "'1.2.3:1'", "'localhost:1'", "'::1:6380'", "'[::1]6380'",
        "'[::1:6380'", "'[]:1'", "'[1.2.3.4]:1'", "' 1.2.3.4:1'", "''", "6380", "null"}) {
    SCOPED_TRACE(address);
    ConfigError e = ErrorOf(J(std::string("{'listen':{'http':") + address + "}}"));
    EXPECT_EQ(e.path, "listen.http");
    EXPECT_THAT(e.problem, HasSubstr("expected an address"));
  }
}

// Each case: a configuration, the exact path of its error and a piece of the problem text, all
// written with J's single quotes.
struct ErrorCase {
  std::string json;
  std::string path;
  std::string problem;
};

void ExpectErrors(const std::vector<ErrorCase>& cases) {
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.json);
    ConfigError e = ErrorOf(J(c.json));
    EXPECT_EQ(e.path, J(c.path));
    EXPECT_THAT(e.problem, HasSubstr(J(c.problem)));
    EXPECT_EQ(std::string(e.what()), c.path.empty() ? e.problem : J(c.path) + ": " + e.problem);
  }
}

TEST(ConfigTest, UnknownFieldsAtEveryDepth) {
  const std::string ns = "'namespaces':{'u':{'query':'$1'}}";
  ExpectErrors({
      {"{'thread':2}", "thread", "unknown field (expected one of: listen, threads,"},
      {"{'listen':{'redis':':1'}}", "listen.redis", "unknown field"},
      {"{'memory':{'max':1}}", "memory.max", "unknown field"},
      {"{'postgres':{'primary':'P','replica':['R']}}", "postgres.replica", "unknown field"},
      {"{'postgres':{'primary':'P','replicas':['R'],'pools':{'p':{'size':1}}}}",
       "postgres.pools.p.size", "unknown field"},
      {"{" + kPg + ",'namespaces':{'u':{'query':'$1','ttl':1}}}", "namespaces.u.ttl",
       "unknown field"},
      {"{" + kPg + "," + ns + ",'lease':{'ttl_ms':1}}", "lease.ttl_ms", "unknown field"},
      {"{'shedding':{'max':1}}", "shedding.max", "unknown field"},
      {"{'resp':{'password':'x'}}", "resp.password", "unknown field"},
      {"{'http':{'port':1}}", "http.port", "unknown field"},
      {"{'listen':{'a.b':1}}", "listen.'a.b'", "unknown field"},
  });
}

TEST(ConfigTest, WrongTypesNameTheExpectedType) {
  const std::string pg = "'postgres':{'primary':'P','replicas':['R'],";
  ExpectErrors({
      {"{'threads':'2'}", "threads", "expected an integer in [1, 256], got '2'"},
      {"{'threads':2.5}", "threads", "got 2.5"},
      {"{'threads':true}", "threads", "got true"},
      {"{'memory':{'max_bytes':null}}", "memory.max_bytes", "got null"},
      {"{'memory':5}", "memory", "expected an object, got 5"},
      {"{'listen':[]}", "listen", "expected an object"},
      {"{'log_level':1}", "log_level", "expected one of 'debug', 'info', 'warn', 'error'"},
      {"{'postgres':'P'}", "postgres", "expected an object"},
      {"{'postgres':{'primary':1}}", "postgres.primary", "expected a non-empty string, got 1"},
      {"{'postgres':{'primary':'P','replicas':'R'}}", "postgres.replicas",
       "expected an array of connection strings"},
      {"{'postgres':{'primary':'P','replicas':['R',5]}}", "postgres.replicas[1]",
       "expected a non-empty string, got 5"},
      {"{" + pg + "'fallback_to_primary':'no'}}", "postgres.fallback_to_primary",
       "expected true or false, got 'no'"},
      {"{" + pg + "'pools':[]}}", "postgres.pools", "expected an object"},
      {"{" + pg + "'pools':{'p':1}}}", "postgres.pools.p", "expected an object"},
      {"{" + pg + "'pools':{'p':{'replicas':'some'}}}}", "postgres.pools.p.replicas",
       "expected 'all' or an array of indices"},
      {"{" + pg + "'pools':{'p':{'replicas':['0']}}}}", "postgres.pools.p.replicas[0]",
       "expected an integer in [0, 0], got '0'"},
      {"{" + kPg + ",'namespaces':[]}", "namespaces", "expected an object"},
      {"{" + kPg + ",'namespaces':{'u':'SELECT $1'}}", "namespaces.u", "expected an object"},
      {"{" + kPg + ",'namespaces':{'u':{'query':'$1','ttl_ms':'abc'}}}", "namespaces.u.ttl_ms",
       "expected an integer in [1, 31536000000], got 'abc'"},
      {"{" + kPg + ",'namespaces':{'u':{'query':'$1','ttl_jitter':'x'}}}",
       "namespaces.u.ttl_jitter", "expected a number in [0, 1], got 'x'"},
      {"{" + kPg + ",'namespaces':{'u':{'query':'$1','blocked':0}}}", "namespaces.u.blocked",
       "expected true or false"},
      {"{" + kPg + ",'namespaces':{'u':{'query':['$1']}}}", "namespaces.u.query",
       "expected a non-empty string"},
      {"{'resp':{'requirepass':null}}", "resp.requirepass", "expected a string, got null"},
  });
}

TEST(ConfigTest, OutOfRangeValues) {
  const std::string ns = "{" + kPg + ",'namespaces':{'u':{'query':'$1',";
  ExpectErrors({
      {"{'threads':0}", "threads", "expected an integer in [1, 256], got 0"},
      {"{'threads':257}", "threads", "got 257"},
      {"{'threads':1e10}", "threads", "got 10000000000.0"},
      {"{'memory':{'max_bytes':1048575}}", "memory.max_bytes", "expected an integer >= 1048576"},
      {"{'memory':{'max_bytes':18446744073709551615}}", "memory.max_bytes", "got 18446744073709"},
      {"{'log_level':'trace'}", "log_level", "got 'trace'"},
      {ns + "'ttl_ms':0}}}", "namespaces.u.ttl_ms", "got 0"},
      {ns + "'ttl_jitter':1.5}}}", "namespaces.u.ttl_jitter", "got 1.5"},
      {ns + "'ttl_jitter':-0.1}}}", "namespaces.u.ttl_jitter", "got -0.1"},
      {ns + "'stale_ms':-1}}}", "namespaces.u.stale_ms", "expected an integer in [0, "},
      {ns + "'negative_ttl_ms':-5}}}", "namespaces.u.negative_ttl_ms", "got -5"},
      {ns + "'max_inflight_loads':0}}}", "namespaces.u.max_inflight_loads",
       "expected a positive integer, got 0"},
      {ns + "'max_loads_per_s':-1}}}", "namespaces.u.max_loads_per_s",
       "expected a non-negative number, got -1"},
      {ns + "'batch_max':0}}}", "namespaces.u.batch_max", "got 0"},
      {ns + "'batch_window_us':-1}}}", "namespaces.u.batch_window_us", "got -1"},
      {"{'postgres':{'primary':'P','replicas':['R'],'pools':{'p':{'connections':0}}}}",
       "postgres.pools.p.connections", "expected a positive integer, got 0"},
      {"{'postgres':{'primary':'P','replicas':['R'],'pools':{'p':{'max_inflight_loads':-1}}}}",
       "postgres.pools.p.max_inflight_loads", "got -1"},
      {"{'postgres':{'primary':'P','replicas':['R'],'statement_timeout_ms':-1}}",
       "postgres.statement_timeout_ms", "got -1"},
      {"{'postgres':{'primary':'P','replicas':['R'],'health_check_interval_ms':0}}",
       "postgres.health_check_interval_ms", "got 0"},
      {"{'postgres':{'primary':'P','replicas':['R'],'pools':{'p':{'routing':'random'}}}}",
       "postgres.pools.p.routing", "expected one of 'round_robin', 'least_loaded', got 'random'"},
      {"{'postgres':{'primary':'P','replicas':['R'],'invalidation_channel':''}}",
       "postgres.invalidation_channel", "expected a non-empty string"},
      {"{'postgres':{'primary':'P','replicas':['R'],'invalidation_channel':'" +
           std::string(64, 'c') + "'}}",
       "postgres.invalidation_channel", "63-byte"},
      {"{'lease':{'lease_ttl_ms':0}}", "lease.lease_ttl_ms", "got 0"},
      {"{'lease':{'wait_timeout_ms':-1}}", "lease.wait_timeout_ms", "got -1"},
      {"{'shedding':{'max_clients':0}}", "shedding.max_clients", "got 0"},
      {"{'resp':{'proto_max_bulk_len':0}}", "resp.proto_max_bulk_len", "got 0"},
      {"{'resp':{'idle_timeout_s':-1}}", "resp.idle_timeout_s", "got -1"},
      {"{'http':{'max_header_bytes':4294967296}}", "http.max_header_bytes",
       "expected an integer in [1, 4294967295]"},
      {"{'http':{'max_pipelined':0}}", "http.max_pipelined", "got 0"},
      {"{'http':{'max_pipelined':2147483648}}", "http.max_pipelined", "got 2147483648"},
      {"{'shutdown':{'drain_grace_ms':-1}}", "shutdown.drain_grace_ms", "got -1"},
      {"{'shutdown':{'timeout_ms':'5s'}}", "shutdown.timeout_ms", "got \"5s\""},
      {"{'shutdown':{'grace_ms':1}}", "shutdown.grace_ms", "unknown"},
  });
}

TEST(ConfigTest, CrossFieldRules) {
  const std::string pg = "'postgres':{'primary':'P','replicas':['R0','R1'],";
  ExpectErrors({
      {"{'postgres':{'replicas':['R']}}", "postgres.primary", "required field is missing"},
      {"{'postgres':{'primary':'','replicas':['R']}}", "postgres.primary", "non-empty"},
      {"{" + kPg + ",'namespaces':{'u':{'ttl_ms':1}}}", "namespaces.u.query",
       "required field is missing"},
      {"{" + kPg + ",'namespaces':{'u':{'query':'SELECT 1'}}}", "namespaces.u.query",
       "must use $1"},
      {"{" + kPg + ",'namespaces':{'u':{'query':'SELECT $10'}}}", "namespaces.u.query",
       "must use $1"},
      {"{" + kPg + ",'namespaces':{'u':{'query':'$1','batch_query':'SELECT 1'}}}",
       "namespaces.u.batch_query", "must use $1"},
      {"{'namespaces':{'u':{'query':'$1'}}}", "namespaces.u.query", "'postgres' section"},
      {"{" + kPg + ",'namespaces':{'u':{'query':'$1','pool':'fast'}}}", "namespaces.u.pool",
       "unknown pool 'fast' (postgres.pools has: default)"},
      {"{" + pg + "'pools':{'fast':{}}},'namespaces':{'u':{'query':'$1'}}}", "namespaces.u.pool",
       "unknown pool 'default' (postgres.pools has: fast)"},
      {"{" + kPg + ",'namespaces':{'a:b':{'query':'$1'}}}", "namespaces.'a:b'",
       "must be non-empty and contain no"},
      {"{" + kPg + ",'namespaces':{'':{'query':'$1'}}}", "namespaces.''", "non-empty"},
      {"{" + pg + "'pools':{'p':{'replicas':[2]}}}}", "postgres.pools.p.replicas[0]",
       "expected an integer in [0, 1], got 2"},
      {"{" + pg + "'pools':{'p':{'replicas':[1,0,1]}}}}", "postgres.pools.p.replicas[2]",
       "listed twice"},
      {"{" + pg + "'pools':{'p':{'replicas':[]}}}}", "postgres.pools.p.replicas",
       "no replicas and postgres.fallback_to_primary is false"},
      {"{'postgres':{'primary':'P','fallback_to_primary':true,'pools':{'p':{'replicas':[0]}}}}",
       "postgres.pools.p.replicas[0]", "postgres.replicas is empty"},
      {"{'postgres':{'primary':'P','replicas':[],'pools':{'p':{'replicas':'all'}}}}",
       "postgres.pools.p.replicas", "no replicas"},
      {"{" + pg + "'pools':{'':{}}}}", "postgres.pools.''", "non-empty"},
  });
}

TEST(ConfigTest, DuplicateKeysAreErrors) {
  ExpectErrors({
      {"{'threads':2,'threads':3}", "threads", "duplicate field"},
      {"{'postgres':{'primary':'P','replicas':['R'],'pools':{'p':{},'p':{}}}}", "postgres.pools.p",
       "duplicate field"},
      {"{'x':[1,{'a':1},{'b':1,'b':2}]}", "x[2].b", "duplicate field"},
  });
  // The same key in sibling objects is fine.
  EXPECT_NO_THROW(ParseConfig(J("{'lease':{'lease_ttl_ms':1},'http':{'read_timeout_ms':1}}")));
}

TEST(ConfigTest, BadSyntaxAndRoot) {
  ExpectErrors({
      {"{'threads':2,}", "", "invalid JSON: parse error at line 1, column 14"},
      {"{'threads':2}\n{", "", "line 2, column 1"},
      {"", "", "invalid JSON"},
      {"{'threads':2 // comment\n}", "", "invalid JSON"},
      {"[]", "", "expected a JSON object at the top level, got []"},
      {"5", "", "got 5"},
      {"null", "", "got null"},
  });
}

TEST(ConfigTest, ErrorMessageFormat) {
  ConfigError e = ErrorOf(J("{" + kPg + ",'namespaces':{'user':{'query':'$1','ttl_ms':'abc'}}}"));
  EXPECT_STREQ(e.what(),
               "namespaces.user.ttl_ms: expected an integer in [1, 31536000000], got \"abc\"");
  // Long offending values are shortened.
  e = ErrorOf(J("{'threads':'" + std::string(500, 'x') + "'}"));
  EXPECT_LT(std::string(e.what()).size(), 120u);
}

// A file path in the test's temporary directory, unique per process and removed afterwards.
class TempFile {
 public:
  explicit TempFile(const std::string& contents)
      : path_(testing::TempDir() + "corral_config_test_" + std::to_string(getpid()) + ".json") {
    std::ofstream(path_) << contents;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ConfigTest, LoadConfigFile) {
  {
    TempFile file(kSpecExample);
    EXPECT_EQ(LoadConfigFile(file.path()).namespaces.at("user").ttl_ms, 60000);
  }
  const std::string missing = testing::TempDir() + "corral_no_such_config.json";
  try {
    LoadConfigFile(missing);
    ADD_FAILURE() << "loaded a missing file";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.path, "");
    EXPECT_THAT(e.problem, HasSubstr(missing));
    EXPECT_THAT(e.problem, HasSubstr("No such file"));
  }
  try {
    LoadConfigFile(testing::TempDir());
    ADD_FAILURE() << "loaded a directory";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.problem, HasSubstr("is a directory"));
  }
  TempFile bad("{\"threads\": 0}");
  try {
    LoadConfigFile(bad.path());
    ADD_FAILURE() << "loaded an invalid file";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.path, "threads");
  }
}

TEST(ConfigTest, DescribeConfigIsOneLineWithoutSecrets) {
  Config c = ParseConfig(J(R"({'listen': {'resp': '[::1]:6390'}, 'threads': 2,
      'resp': {'requirepass': 'hunter2'},
      'postgres': {'primary': 'host=p password=s3cret', 'replicas': ['host=r password=s3cret']},
      'namespaces': {'user': {'query': '$1'}, 'post': {'query': '$1'}}})"));
  std::string line = DescribeConfig(c);
  EXPECT_EQ(line,
            "resp=[::1]:6390 http=127.0.0.1:8080 threads=2 max_bytes=268435456 log_level=info "
            "auth=on users=none protected_mode=yes postgres=on replicas=1 "
            "pools=default(replicas=1,connections=8,routing=round_robin) "
            "fallback_to_primary=false prepared_statements=true invalidation=notify "
            "namespaces=post,user");
  EXPECT_EQ(DescribeConfig(ParseConfig(R"({"threads": 3})")),
            "resp=127.0.0.1:6380 http=127.0.0.1:8080 threads=3 max_bytes=268435456 "
            "log_level=info auth=off users=none protected_mode=yes postgres=off namespaces=none");
}

// Every field the parser knows is in ConfigFields() (the README check and the walkers below rely on
// it): a config that sets each to its default is accepted, and one that sets it to an invalid
// value is rejected naming that field.
TEST(ConfigWalkTest, EveryFieldRejectsItsInvalidValuesByPath) {
  size_t walked = 0;
  for (const ConfigField& field : ConfigFields()) {
    const std::string path = config_walk::ConcretePath(field.path);
    ASSERT_FALSE(field.invalid.empty()) << field.path;
    for (const std::string& bad : field.invalid) {
      SCOPED_TRACE(path + " = " + bad);
      ConfigError e = ErrorOf(config_walk::ConfigWith(path, bad));
      EXPECT_TRUE(e.path == path || e.path.starts_with(path + "[")) << e.what();
      ++walked;
    }
  }
  EXPECT_GT(walked, 80u);
}

TEST(ConfigWalkTest, ConfigFieldsListsEveryFieldOnce) {
  std::set<std::string> paths;
  for (const ConfigField& field : ConfigFields()) {
    EXPECT_TRUE(paths.insert(field.path).second) << field.path << " listed twice";
  }
  // A sample from each section, so that a section left out of ConfigFields() is noticed.
  for (const char* path :
       {"listen.resp", "threads", "memory.max_bytes", "log_level", "postgres.primary",
        "postgres.pools.NAME.routing", "namespaces.NAME.ttl_ms", "namespaces.NAME.batch_query",
        "lease.error_holdoff_ms", "shedding.max_clients", "resp.idle_timeout_s",
        "http.max_pipelined", "redis.nodes"}) {
    EXPECT_TRUE(paths.contains(path)) << path;
  }
}

// README.md's "## Configuration" table: field -> default cell, one field per row.
std::map<std::string, std::string> ReadmeTable() {
  std::ifstream in(CORRAL_README_PATH);
  EXPECT_TRUE(in) << "cannot read " << CORRAL_README_PATH;
  std::map<std::string, std::string> table;
  std::string line;
  bool in_section = false;
  while (std::getline(in, line)) {
    if (line.starts_with("## ")) in_section = line == "## Configuration";
    if (!in_section || !line.starts_with("| `")) continue;
    std::vector<std::string> cells;
    std::stringstream row(line.substr(2));
    for (std::string cell; std::getline(row, cell, '|');) cells.push_back(cell);
    if (cells.size() < 3) {
      ADD_FAILURE() << "malformed README row: " << line;
      continue;
    }
    auto strip = [](std::string text) {
      std::erase(text, '`');
      text.erase(0, text.find_first_not_of(' '));
      text.erase(text.find_last_not_of(' ') + 1);
      return text;
    };
    EXPECT_TRUE(table.emplace(strip(cells[0]), strip(cells[1])).second)
        << "README lists " << cells[0] << " twice";
  }
  return table;
}

TEST(ConfigReadmeTest, TableMatchesTheDefaultsInCode) {
  std::map<std::string, std::string> readme = ReadmeTable();
  ASSERT_FALSE(readme.empty()) << "no configuration table found in README.md";
  std::set<std::string> in_code;
  for (const ConfigField& field : ConfigFields()) {
    in_code.insert(field.path);
    auto row = readme.find(field.path);
    if (row == readme.end()) {
      ADD_FAILURE() << field.path << " is missing from README's configuration table";
      continue;
    }
    // "0 (off)" documents the default 0: what follows " (" is commentary.
    std::string documented = row->second.substr(0, row->second.find(" ("));
    EXPECT_EQ(documented, field.default_text) << "README's default for " << field.path;
  }
  for (const auto& [path, value] : readme) {
    EXPECT_TRUE(in_code.contains(path)) << "README documents " << path << ", which the code lacks";
  }
}

}  // namespace
}  // namespace corral::server

namespace corral::server {
namespace {

// Issue 17: postgres.invalidation "logical" and each namespace's table / key_column.
TEST(ConfigTest, InvalidationFromTheWal) {
  const Config c = ParseConfig(
      J("{'postgres':{'primary':'P','replicas':['R'],'invalidation':'logical','slot':'edge',"
        "'publication':'cached'},'namespaces':{'user':{'query':'$1','table':'app.users'},"
        "'post':{'query':'$1','table':'posts','key_column':'slug'},'report':{'query':'$1'}}}"));
  EXPECT_EQ(c.postgres->invalidation, pg::InvalidationMode::kLogical);
  EXPECT_EQ(c.postgres->slot, "edge");
  EXPECT_EQ(c.postgres->publication, "cached");
  EXPECT_EQ(c.namespaces.at("user").table, "app.users");
  EXPECT_EQ(c.namespaces.at("user").key_column, "id");
  EXPECT_EQ(c.namespaces.at("post").key_column, "slug");
  EXPECT_EQ(c.namespaces.at("report").table, "");
  EXPECT_EQ(ParseConfig(J("{" + kPg + "}")).postgres->invalidation, pg::InvalidationMode::kNotify);
  ExpectErrors({
      {"{'postgres':{'primary':'P','replicas':['R'],'invalidation':'wal'}}",
       "postgres.invalidation", "expected one of 'notify', 'logical'"},
      {"{'postgres':{'primary':'P','replicas':['R'],'invalidation':'logical'},"
       "'namespaces':{'u':{'query':'$1'}}}",
       "postgres.invalidation", "needs a namespace with a 'table'"},
      {"{'postgres':{'primary':'P','replicas':['R'],'slot':'Edge-1'}}", "postgres.slot",
       "expected lower-case letters, digits and underscores"},
      {"{'postgres':{'primary':'P','replicas':['R'],'publication':''}}", "postgres.publication",
       "expected a non-empty string"},
      {"{" + kPg + ",'namespaces':{'u':{'query':'$1','table':'app.'}}}", "namespaces.u.table",
       "expected 'schema.table' or 'table'"},
      {"{" + kPg + ",'namespaces':{'u':{'query':'$1','table':'t','key_column':''}}}",
       "namespaces.u.key_column", "expected a non-empty string"},
  });
}

TEST(ConfigTest, EachNodeReadsASlotOfItsOwn) {
  EXPECT_EQ(pg::WalSlotName("corral", "web-7.example.com"), "corral_web_7_example_com");
  EXPECT_EQ(pg::WalSlotName("corral", "Node_A"), "corral_node_a");
  EXPECT_EQ(pg::WalSlotName("c", std::string(100, 'x')).size(), 63u);
}

}  // namespace
}  // namespace corral::server
