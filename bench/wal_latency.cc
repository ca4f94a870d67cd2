// Commit-to-invalidation latency (issue 17). For each round: GET NS:ID through corral (cached),
// UPDATE the row on the primary in its own transaction with synchronous_commit on, and from the
// moment the COMMIT returns, poll corral with EXISTS NS:ID (which never loads) until the entry is
// gone. Prints the latency percentiles in milliseconds and one JSON line.
//
// Usage: corral_wal_latency --pg CONNINFO --port RESP_PORT --table TABLE --ns NS
//                           [--ids N] [--rounds R] [--label TEXT]
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::string pg, table, ns, label = "wal";
  int port = 0, ids = 1000, rounds = 2000;
};

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "corral_wal_latency: %s\n", why.c_str());
  std::exit(1);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) Die("missing value after " + flag);
    const std::string value = argv[++i];
    if (flag == "--pg")
      a.pg = value;
    else if (flag == "--port")
      a.port = std::atoi(value.c_str());
    else if (flag == "--table")
      a.table = value;
    else if (flag == "--ns")
      a.ns = value;
    else if (flag == "--ids")
      a.ids = std::atoi(value.c_str());
    else if (flag == "--rounds")
      a.rounds = std::atoi(value.c_str());
    else if (flag == "--label")
      a.label = value;
    else
      Die("unknown flag " + flag);
  }
  if (a.pg.empty() || a.table.empty() || a.ns.empty() || a.port <= 0 || a.ids <= 0 ||
      a.rounds <= 0) {
    Die("usage: --pg CONNINFO --port RESP_PORT --table TABLE --ns NS [--ids N] [--rounds R]");
  }
  return a;
}

redisReply* Command(redisContext* c, const char* format, const std::string& key) {
  auto* r = static_cast<redisReply*>(redisCommand(c, format, key.c_str()));
  if (r == nullptr) Die(std::string("corral: ") + c->errstr);
  return r;
}

void Exec(PGconn* pg, const std::string& sql) {
  PGresult* r = PQexec(pg, sql.c_str());
  const ExecStatusType s = PQresultStatus(r);
  if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
    Die("postgres: " + sql + ": " + PQresultErrorMessage(r));
  }
  PQclear(r);
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * (v.size() - 1) + 0.5));
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  PGconn* pg = PQconnectdb(a.pg.c_str());
  if (PQstatus(pg) != CONNECTION_OK) Die(std::string("postgres: ") + PQerrorMessage(pg));
  Exec(pg, "SET synchronous_commit = on");
  redisContext* c = redisConnect("127.0.0.1", a.port);
  if (c == nullptr || c->err) Die("corral: cannot connect");
  std::vector<double> ms;
  int timeouts = 0;
  for (int round = 0; round < a.rounds; ++round) {
    const int id = 1 + round % a.ids;
    const std::string key = a.ns + ":" + std::to_string(id);
    freeReplyObject(Command(c, "GET %s", key));
    redisReply* cached = Command(c, "EXISTS %s", key);
    const bool present = cached->type == REDIS_REPLY_INTEGER && cached->integer == 1;
    freeReplyObject(cached);
    if (!present) Die(key + " was not cached by a GET");
    Exec(pg, "UPDATE " + a.table + " SET version = version + 1 WHERE id = " + std::to_string(id));
    const auto committed = Clock::now();
    const auto deadline = committed + std::chrono::seconds(5);
    bool gone = false;
    while (!gone && Clock::now() < deadline) {
      redisReply* r = Command(c, "EXISTS %s", key);
      gone = r->type == REDIS_REPLY_INTEGER && r->integer == 0;
      freeReplyObject(r);
    }
    if (!gone) {
      if (++timeouts >= 3) Die("three invalidations did not arrive within 5 s each");
      continue;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - committed).count());
  }
  if (ms.empty()) Die("no invalidation arrived within 5 s");
  std::printf("%-7s rounds=%d p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms timeouts=%d\n",
              a.label.c_str(), a.rounds, Percentile(ms, 50), Percentile(ms, 90), Percentile(ms, 99),
              Percentile(ms, 100), timeouts);
  std::printf(
      "{\"label\":\"%s\",\"rounds\":%d,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
      "\"max_ms\":%.3f,\"timeouts\":%d}\n",
      a.label.c_str(), a.rounds, Percentile(ms, 50), Percentile(ms, 90), Percentile(ms, 99),
      Percentile(ms, 100), timeouts);
  redisFree(c);
  PQfinish(pg);
  return timeouts == 0 ? 0 : 1;
}
