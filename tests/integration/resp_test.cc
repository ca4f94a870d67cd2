// The RESP endpoint through hiredis, against the real corral-server: command semantics, reply
// shapes and Redis 7.0 error texts, pipelining, binary safety, AUTH and the client limit.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "cache-server/build_info.h"
#include "tests/integration/server_process.h"
#include "tests/integration/shared_server.h"

namespace corral::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// One server for the suite (no password, default limits); every test starts from FLUSHALL.
class RespTest : public SharedClientTest {};

TEST_F(RespTest, PingAndEcho) {
  EXPECT_EQ(Cmd({"PING"}), "+PONG");
  EXPECT_EQ(Cmd({"ping", "hello world"}), "$hello world");
  EXPECT_EQ(Cmd({"ECHO", "abc"}), "$abc");
  EXPECT_EQ(Cmd({"ECHO", ""}), "$");
}

TEST_F(RespTest, SetGetAndMget) {
  EXPECT_EQ(Cmd({"SET", "k1", "v1"}), "+OK");
  EXPECT_EQ(Cmd({"SET", "k2", "v2"}), "+OK");
  EXPECT_EQ(Cmd({"GET", "k1"}), "$v1");
  EXPECT_EQ(Cmd({"GET", "missing"}), "(nil)");
  EXPECT_EQ(Cmd({"MGET", "k1", "missing", "k2"}), "[$v1, (nil), $v2]");
  EXPECT_EQ(Cmd({"SET", "k1", "overwritten"}), "+OK");
  EXPECT_EQ(Cmd({"GET", "k1"}), "$overwritten");
}

TEST_F(RespTest, SetWithExpiryOptions) {
  EXPECT_EQ(Cmd({"SET", "ex", "v", "EX", "100"}), "+OK");
  EXPECT_EQ(Int({"TTL", "ex"}), 100);
  int64_t pttl = Int({"PTTL", "ex"});
  EXPECT_GT(pttl, 90000);
  EXPECT_LE(pttl, 100000);

  EXPECT_EQ(Cmd({"SET", "px", "v", "px", "5000"}), "+OK");
  pttl = Int({"PTTL", "px"});
  EXPECT_GT(pttl, 0);
  EXPECT_LE(pttl, 5000);

  EXPECT_EQ(Cmd({"SET", "k", "v", "EX", "0"}), "-ERR invalid expire time in 'set' command");
  EXPECT_EQ(Cmd({"SET", "k", "v", "PX", "-5"}), "-ERR invalid expire time in 'set' command");
  EXPECT_EQ(Cmd({"SET", "k", "v", "EX", "ten"}), "-ERR value is not an integer or out of range");
  EXPECT_EQ(Cmd({"SET", "k", "v", "EX"}), "-ERR syntax error");
  EXPECT_EQ(Cmd({"SET", "k", "v", "EX", "10", "PX", "100"}), "-ERR syntax error");
  EXPECT_EQ(Cmd({"SET", "k", "v", "BOGUS"}), "-ERR syntax error");
  EXPECT_EQ(Cmd({"EXISTS", "k"}), ":0") << "a rejected SET must not store";
}

TEST_F(RespTest, SetNxXx) {
  EXPECT_EQ(Cmd({"SET", "k", "a", "XX"}), "(nil)");
  EXPECT_EQ(Cmd({"EXISTS", "k"}), ":0");
  EXPECT_EQ(Cmd({"SET", "k", "a", "NX"}), "+OK");
  EXPECT_EQ(Cmd({"SET", "k", "b", "NX"}), "(nil)");
  EXPECT_EQ(Cmd({"GET", "k"}), "$a");
  EXPECT_EQ(Cmd({"SET", "k", "c", "XX"}), "+OK");
  EXPECT_EQ(Cmd({"GET", "k"}), "$c");
  EXPECT_EQ(Cmd({"SET", "k", "d", "NX", "XX"}), "-ERR syntax error");
}

TEST_F(RespTest, SetKeepTtlAndGet) {
  EXPECT_EQ(Cmd({"SET", "k", "v1", "EX", "100"}), "+OK");
  EXPECT_EQ(Cmd({"SET", "k", "v2", "KEEPTTL"}), "+OK");
  EXPECT_EQ(Cmd({"GET", "k"}), "$v2");
  EXPECT_GT(Int({"TTL", "k"}), 90) << "KEEPTTL keeps the expiry";
  EXPECT_EQ(Cmd({"SET", "k", "v3"}), "+OK");
  EXPECT_EQ(Int({"TTL", "k"}), -1) << "a plain SET clears the expiry";
  EXPECT_EQ(Cmd({"SET", "k", "v4", "KEEPTTL", "EX", "5"}), "-ERR syntax error");

  EXPECT_EQ(Cmd({"SET", "k", "v5", "GET"}), "$v3");
  EXPECT_EQ(Cmd({"GET", "k"}), "$v5");
  EXPECT_EQ(Cmd({"SET", "fresh", "x", "GET"}), "(nil)");
  EXPECT_EQ(Cmd({"GET", "fresh"}), "$x");
}

TEST_F(RespTest, DelUnlinkExists) {
  for (const char* k : {"a", "b", "c"}) ASSERT_EQ(Cmd({"SET", k, "1"}), "+OK");
  EXPECT_EQ(Int({"EXISTS", "a", "b", "missing"}), 2);
  EXPECT_EQ(Int({"EXISTS", "a", "a"}), 2) << "Redis counts a repeated key each time";
  EXPECT_EQ(Int({"DEL", "a", "missing"}), 1);
  EXPECT_EQ(Int({"UNLINK", "b", "c", "b"}), 2);
  EXPECT_EQ(Int({"EXISTS", "a", "b", "c"}), 0);
  EXPECT_EQ(Int({"DEL", "a"}), 0);
}

// OBJECT FREQ / IDLETIME read the eviction policy's state (memory.policy defaults to tinylfu):
// the SET and two GETs are three accesses; nothing has been idle for a second yet.
TEST_F(RespTest, ObjectFreqAndIdletime) {
  EXPECT_EQ(Cmd({"SET", "object:k", "v"}), "+OK");
  EXPECT_EQ(Cmd({"GET", "object:k"}), "$v");
  EXPECT_EQ(Cmd({"GET", "object:k"}), "$v");
  EXPECT_GE(Int({"OBJECT", "FREQ", "object:k"}), 3);
  EXPECT_LE(Int({"OBJECT", "IDLETIME", "object:k"}), 1);
  EXPECT_EQ(Cmd({"OBJECT", "freq", "object:nosuch"}), "(nil)");
  EXPECT_EQ(Cmd({"OBJECT", "ENCODINGX", "object:k"}),
            "-ERR unknown subcommand 'ENCODINGX'. Try OBJECT HELP.");
  EXPECT_EQ(Cmd({"OBJECT", "FREQ"}), "-ERR wrong number of arguments for 'object|freq' command");
  EXPECT_EQ(Cmd({"OBJECT"}), "-ERR wrong number of arguments for 'object' command");
}

TEST_F(RespTest, TtlAndExpire) {
  EXPECT_EQ(Int({"TTL", "missing"}), -2);
  EXPECT_EQ(Int({"PTTL", "missing"}), -2);
  ASSERT_EQ(Cmd({"SET", "k", "v"}), "+OK");
  EXPECT_EQ(Int({"TTL", "k"}), -1);
  EXPECT_EQ(Int({"PTTL", "k"}), -1);
  EXPECT_EQ(Int({"EXPIRE", "k", "100"}), 1);
  EXPECT_EQ(Int({"TTL", "k"}), 100);
  EXPECT_EQ(Int({"PEXPIRE", "k", "5000"}), 1);
  int64_t pttl = Int({"PTTL", "k"});
  EXPECT_GT(pttl, 0);
  EXPECT_LE(pttl, 5000);
  EXPECT_EQ(Int({"EXPIRE", "missing", "100"}), 0);
  EXPECT_EQ(Cmd({"EXPIRE", "k", "soon"}), "-ERR value is not an integer or out of range");
  // A non-positive expiry deletes the key at once, as in Redis.
  EXPECT_EQ(Int({"EXPIRE", "k", "0"}), 1);
  EXPECT_EQ(Cmd({"GET", "k"}), "(nil)");

  // A short PX expires: wait for it with a deadline instead of sleeping a fixed time.
  ASSERT_EQ(Cmd({"SET", "short", "v", "PX", "50"}), "+OK");
  EXPECT_TRUE(WaitFor([&] { return Cmd({"GET", "short"}) == "(nil)"; }, Millis(5000)));
  EXPECT_EQ(Int({"TTL", "short"}), -2);
}

TEST_F(RespTest, ExpireOptionErrors) {
  ASSERT_EQ(Cmd({"SET", "k", "v"}), "+OK");
  EXPECT_EQ(Cmd({"EXPIRE", "k", "100", "NX", "XX"}),
            "-ERR NX and XX, GT or LT options at the same time are not compatible");
  EXPECT_EQ(Cmd({"EXPIRE", "k", "100", "NX", "GT"}),
            "-ERR NX and XX, GT or LT options at the same time are not compatible");
  // Redis 7.0 (expire.c) has its own text for GT with LT.
  EXPECT_EQ(Cmd({"EXPIRE", "k", "100", "GT", "LT"}),
            "-ERR GT and LT options at the same time are not compatible");
  EXPECT_EQ(Cmd({"EXPIRE", "k", "100", "SOON"}), "-ERR Unsupported option SOON");
  // GT on a key without a TTL never applies (no TTL counts as infinite); LT does.
  EXPECT_EQ(Int({"EXPIRE", "k", "100", "GT"}), 0);
  EXPECT_EQ(Int({"EXPIRE", "k", "100", "LT"}), 1);
  EXPECT_EQ(Int({"EXPIRE", "k", "50", "GT"}), 0);
  EXPECT_EQ(Int({"EXPIRE", "k", "200", "GT"}), 1);
  EXPECT_EQ(Int({"EXPIRE", "k", "300", "NX"}), 0);
  EXPECT_EQ(Int({"EXPIRE", "k", "300", "XX"}), 1);
  EXPECT_EQ(Int({"TTL", "k"}), 300);
}

TEST_F(RespTest, ExpiryOverflowIsRejected) {
  // Redis adds the current time and answers "invalid expire time" when that overflows; a key
  // must not silently become persistent instead.
  EXPECT_EQ(Cmd({"SET", "k", "v", "PX", "9223372036854775807"}),
            "-ERR invalid expire time in 'set' command");
  EXPECT_EQ(Cmd({"SET", "k", "v", "EX", "9223372036854775"}),
            "-ERR invalid expire time in 'set' command");
  EXPECT_EQ(Int({"EXISTS", "k"}), 0);
  ASSERT_EQ(Cmd({"SET", "k", "v"}), "+OK");
  EXPECT_EQ(Cmd({"PEXPIRE", "k", "9223372036854775807"}),
            "-ERR invalid expire time in 'pexpire' command");
  EXPECT_EQ(Cmd({"EXPIRE", "k", "9223372036854775"}),
            "-ERR invalid expire time in 'expire' command");
  EXPECT_EQ(Int({"TTL", "k"}), -1);
}

TEST_F(RespTest, DbSizeAndFlush) {
  EXPECT_EQ(Int({"DBSIZE"}), 0);
  for (const char* k : {"a", "b", "c"}) ASSERT_EQ(Cmd({"SET", k, "1"}), "+OK");
  EXPECT_EQ(Int({"DBSIZE"}), 3);
  EXPECT_EQ(Cmd({"FLUSHDB"}), "+OK");
  EXPECT_EQ(Int({"DBSIZE"}), 0);
  ASSERT_EQ(Cmd({"SET", "a", "1"}), "+OK");
  EXPECT_EQ(Cmd({"FLUSHALL", "ASYNC"}), "+OK");
  EXPECT_EQ(Int({"DBSIZE"}), 0);
  EXPECT_EQ(Cmd({"FLUSHALL", "LATER"}), "-ERR syntax error");
}

TEST_F(RespTest, Select) {
  EXPECT_EQ(Cmd({"SELECT", "0"}), "+OK");
  EXPECT_EQ(Cmd({"SELECT", "1"}), "-ERR DB index is out of range");
  EXPECT_EQ(Cmd({"SELECT", "x"}), "-ERR value is not an integer or out of range");
}

TEST_F(RespTest, ClientSubcommands) {
  EXPECT_EQ(Cmd({"CLIENT", "GETNAME"}), "(nil)");
  EXPECT_EQ(Cmd({"CLIENT", "SETNAME", "worker-1"}), "+OK");
  EXPECT_EQ(Cmd({"CLIENT", "GETNAME"}), "$worker-1");
  EXPECT_EQ(Cmd({"CLIENT", "SETNAME", "has space"}),
            "-ERR Client names cannot contain spaces, newlines or special characters.");
  int64_t id = Int({"CLIENT", "ID"});
  EXPECT_GT(id, 0);
  EXPECT_EQ(Cmd({"CLIENT", "SETINFO", "lib-name", "corral-it"}), "+OK");
  EXPECT_EQ(Cmd({"CLIENT", "SETINFO", "lib-ver", "1.2.3"}), "+OK");
  RedisReplyPtr info = RedisCmd(conn_.get(), {"CLIENT", "INFO"});
  ASSERT_NE(info, nullptr);
  ASSERT_EQ(info->type, REDIS_REPLY_STRING) << ReplyText(info.get());
  std::string line(info->str, info->len);
  EXPECT_THAT(line, StartsWith("id=" + std::to_string(id) + " addr=127.0.0.1:"));
  EXPECT_THAT(line, HasSubstr(" name=worker-1 "));
  EXPECT_THAT(line, HasSubstr(" lib-name=corral-it "));
  EXPECT_THAT(line, HasSubstr(" lib-ver=1.2.3"));
  EXPECT_EQ(Cmd({"CLIENT", "NOPE"}), "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.");
  EXPECT_EQ(Cmd({"CLIENT", "GETNAME", "extra"}),
            "-ERR wrong number of arguments for 'client|getname' command");

  // Another connection has another id.
  RedisConnection other = ConnectRedis(server_->resp_port());
  ASSERT_NE(other, nullptr);
  RedisReplyPtr other_id = RedisCmd(other.get(), {"CLIENT", "ID"});
  ASSERT_NE(other_id, nullptr);
  EXPECT_NE(other_id->integer, id);
}

TEST_F(RespTest, Hello) {
  for (std::vector<std::string> cmd :
       {std::vector<std::string>{"HELLO"}, std::vector<std::string>{"HELLO", "2"}}) {
    RedisReplyPtr r = RedisCmd(conn_.get(), cmd);
    ASSERT_NE(r, nullptr);
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY) << ReplyText(r.get());
    ASSERT_EQ(r->elements % 2, 0u);
    std::map<std::string, std::string> fields;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
      fields[ReplyText(r->element[i])] = ReplyText(r->element[i + 1]);
    }
    EXPECT_EQ(fields["$proto"], ":2");
    EXPECT_EQ(fields["$server"], "$corral");
    EXPECT_THAT(fields["$version"], StartsWith("$7."));
    EXPECT_EQ(fields["$mode"], "$standalone");
    EXPECT_EQ(fields["$role"], "$master");
    EXPECT_EQ(fields["$id"], ReplyText(RedisCmd(conn_.get(), {"CLIENT", "ID"}).get()));
  }
  EXPECT_EQ(Cmd({"HELLO", "1"}), "-NOPROTO unsupported protocol version");
  EXPECT_EQ(Cmd({"HELLO", "4"}), "-NOPROTO unsupported protocol version");
  EXPECT_EQ(Cmd({"HELLO", "two"}), "-ERR Protocol version is not an integer or out of range");
  // HELLO 2 SETNAME names the connection.
  RedisReplyPtr r = RedisCmd(conn_.get(), {"HELLO", "2", "SETNAME", "hello-name"});
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(Cmd({"CLIENT", "GETNAME"}), "$hello-name");
  // The connection still speaks RESP2 after a refused HELLO 4.
  EXPECT_EQ(Cmd({"PING"}), "+PONG");
}

// After HELLO 3 (hiredis 0.14 cannot read RESP3, so raw bytes): nulls are `_`, HELLO and CONFIG
// GET and COMMAND DOCS answer maps, INFO and CLIENT INFO verbatim text; HELLO 2 goes back.
TEST_F(RespTest, Resp3AfterHello3) {
  auto raw = TcpClient::Connect(server_->resp_port());
  ASSERT_NE(raw, nullptr);
  auto exchange = [&](std::string_view command, std::string_view until) {
    EXPECT_TRUE(raw->Send(std::string(command) + "\r\n"));
    EXPECT_TRUE(raw->ReadUntil(until)) << command << ": " << raw->received();
    return raw->Take();
  };
  std::string hello = exchange("HELLO 3", "$7\r\nmodules\r\n*0\r\n");
  EXPECT_THAT(hello, StartsWith("%7\r\n$6\r\nserver\r\n$6\r\ncorral\r\n"));
  EXPECT_THAT(hello, HasSubstr("$5\r\nproto\r\n:3\r\n"));
  EXPECT_EQ(exchange("SET r3 v", "\r\n"), "+OK\r\n");
  EXPECT_EQ(exchange("GET r3:missing", "\r\n"), "_\r\n");
  EXPECT_EQ(exchange("SET r3 w NX", "\r\n"), "_\r\n");
  EXPECT_EQ(exchange("MGET r3 r3:missing", "_\r\n"), "*2\r\n$1\r\nv\r\n_\r\n");
  EXPECT_EQ(exchange("CLIENT GETNAME", "\r\n"), "_\r\n");
  // A PING after each reply whose length varies marks where it ends.
  std::string config = exchange("CONFIG GET maxmemory\r\nPING", "+PONG\r\n");
  EXPECT_THAT(config, StartsWith("%1\r\n$9\r\nmaxmemory\r\n$"));
  std::string info = exchange("CLIENT INFO\r\nPING", "+PONG\r\n");
  EXPECT_THAT(info, StartsWith("="));
  EXPECT_THAT(info, HasSubstr("\r\ntxt:id="));
  EXPECT_THAT(info, HasSubstr(" resp=3 "));
  EXPECT_THAT(exchange("INFO server\r\nPING", "+PONG\r\n"), HasSubstr("\r\ntxt:# Server"));
  // COMMAND DOCS: a map of name to a map, as Redis 7.0 answers in RESP3.
  EXPECT_EQ(exchange("COMMAND DOCS echo nosuch", "$10\r\nconnection\r\n"),
            "%1\r\n$4\r\necho\r\n%3\r\n$7\r\nsummary\r\n$21\r\nEcho the given string\r\n"
            "$5\r\nsince\r\n$5\r\n0.1.0\r\n$5\r\ngroup\r\n$10\r\nconnection\r\n");
  // HELLO without a version keeps RESP3; HELLO 2 returns to RESP2.
  EXPECT_THAT(exchange("HELLO", "*0\r\n"), StartsWith("%7\r\n"));
  EXPECT_THAT(exchange("HELLO 2", "*0\r\n"), StartsWith("*14\r\n"));
  EXPECT_EQ(exchange("GET r3:missing", "\r\n"), "$-1\r\n");
}

TEST_F(RespTest, CommandCount) {
  int64_t count = Int({"COMMAND", "COUNT"});
  EXPECT_GE(count, 20) << "COMMAND COUNT should cover the commands corral implements";
  RedisReplyPtr all = RedisCmd(conn_.get(), {"COMMAND"});
  ASSERT_NE(all, nullptr);
  ASSERT_EQ(all->type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(static_cast<int64_t>(all->elements), count);
  RedisReplyPtr get = RedisCmd(conn_.get(), {"COMMAND", "INFO", "get", "nosuch"});
  ASSERT_NE(get, nullptr);
  ASSERT_EQ(get->type, REDIS_REPLY_ARRAY);
  ASSERT_EQ(get->elements, 2u);
  EXPECT_THAT(ReplyText(get->element[0]), StartsWith("[$get, :2, "));
  EXPECT_EQ(get->element[1]->type, REDIS_REPLY_NIL);
}

// COMMAND INFO is generated from the command table in Redis 7.0's shape: name, arity, flags,
// first/last key, step, ACL categories, tips, key specs, subcommands.
TEST_F(RespTest, CommandInfoHasRedis7Shape) {
  EXPECT_EQ(Cmd({"COMMAND", "INFO", "get"}),
            "[[$get, :2, [+readonly, +fast], :1, :1, :1, [+@read, +@string, +@fast], [], "
            "[[$flags, [+RO, +access], $begin_search, [$type, $index, $spec, [$index, :1]], "
            "$find_keys, [$type, $range, $spec, [$lastkey, :0, $keystep, :1, $limit, :0]]]], []]]");
  EXPECT_EQ(Cmd({"COMMAND", "INFO", "PING"}),
            "[[$ping, :-1, [+fast], :0, :0, :0, [+@fast, +@connection], [], [], []]]");
  EXPECT_THAT(Cmd({"COMMAND", "INFO", "mget"}),
              StartsWith("[[$mget, :-2, [+readonly, +fast], :1, :-1, :1, "));
  EXPECT_THAT(Cmd({"COMMAND", "INFO", "auth"}), HasSubstr("+no_auth"));
  EXPECT_THAT(Cmd({"COMMAND", "INFO", "config"}), HasSubstr("+@admin, +@slow, +@dangerous"));
  EXPECT_EQ(Cmd({"COMMAND", "FOO"}), "-ERR unknown subcommand 'FOO'. Try COMMAND HELP.");
}

TEST_F(RespTest, CommandDocs) {
  EXPECT_EQ(Cmd({"COMMAND", "DOCS", "get", "nosuch"}),
            "[$get, [$summary, $Get the value of a key (read-through for namespace keys), $since, "
            "$0.1.0, $group, $string]]");
  RedisReplyPtr all = RedisCmd(conn_.get(), {"COMMAND", "DOCS"});
  ASSERT_NE(all, nullptr);
  ASSERT_EQ(all->type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(static_cast<int64_t>(all->elements), 2 * Int({"COMMAND", "COUNT"}));
}

// Dispatch is case-insensitive; TTL and PTTL differ only by the table's unit.
TEST_F(RespTest, DispatchIgnoresCaseAndTtlUnitsComeFromTheTable) {
  EXPECT_EQ(Cmd({"sEt", "unit", "v", "PX", "90000"}), "+OK");
  EXPECT_EQ(Cmd({"gEt", "unit"}), "$v");
  EXPECT_EQ(Int({"Ttl", "unit"}), 90);
  int64_t pttl = Int({"pTTL", "unit"});
  EXPECT_GT(pttl, 80000);
  EXPECT_LE(pttl, 90000);
  EXPECT_EQ(Int({"PEXPIRE", "unit", "5000"}), 1);
  EXPECT_EQ(Int({"TTL", "unit"}), 5);
  EXPECT_EQ(Int({"EXPIRE", "unit", "7"}), 1);
  EXPECT_EQ(Int({"TTL", "unit"}), 7);
  EXPECT_EQ(Cmd({"EXPIRE", "unit", "9223372036854775807"}),
            "-ERR invalid expire time in 'expire' command");
  EXPECT_EQ(Cmd({"GETX", "a"}), "-ERR unknown command 'GETX', with args beginning with: 'a' ");
  EXPECT_EQ(Cmd({"LEASE.GETX"}), "-ERR unknown command 'LEASE.GETX', with args beginning with: ");
}

TEST_F(RespTest, ConfigGet) {
  EXPECT_EQ(Cmd({"CONFIG", "GET", "save"}), "[$save, $]");
  EXPECT_EQ(Cmd({"CONFIG", "GET", "appendonly"}), "[$appendonly, $no]");
  // The default memory bound (256 MiB) is reported as maxmemory.
  EXPECT_EQ(Cmd({"CONFIG", "GET", "maxmemory"}), "[$maxmemory, $268435456]");
  EXPECT_EQ(Cmd({"CONFIG", "GET", "no-such-parameter"}), "[]");
  EXPECT_EQ(Cmd({"CONFIG", "GET"}), "-ERR wrong number of arguments for 'config|get' command");
}

TEST_F(RespTest, InfoUsesRedisFormat) {
  RedisReplyPtr r = RedisCmd(conn_.get(), {"INFO"});
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->type, REDIS_REPLY_STRING) << ReplyText(r.get());
  std::string info(r->str, r->len);
  EXPECT_THAT(info, StartsWith("# Server\r\n"));
  for (const char* section : {"# Server\r\n", "# Clients\r\n", "# Memory\r\n", "# Stats\r\n"}) {
    EXPECT_THAT(info, HasSubstr(section));
  }
  EXPECT_THAT(info, HasSubstr("\r\nredis_version:"));
  // Clients compare redis_version as Redis's: it stays a bare X.Y.Z. corral's own version and
  // commit are fields of their own.
  EXPECT_TRUE(std::regex_search(info, std::regex("\r\nredis_version:[0-9]+\\.[0-9]+\\.[0-9]+\r\n")))
      << info;
  EXPECT_THAT(info, HasSubstr("\r\ncorral_version:"));
  EXPECT_THAT(info, HasSubstr("\r\ncorral_commit:" + std::string(server::BuildCommit()) + "\r\n"));
  EXPECT_THAT(info, HasSubstr("\r\ntcp_port:" + std::to_string(server_->resp_port()) + "\r\n"));
  EXPECT_THAT(info, HasSubstr("\r\nprocess_id:" + std::to_string(server_->pid()) + "\r\n"));
  EXPECT_THAT(info, HasSubstr("\r\nconnected_clients:"));
  // Every line ends in CRLF, and each is a "# Section" header, empty, or field:value.
  ASSERT_GE(info.size(), 2u);
  EXPECT_EQ(info.substr(info.size() - 2), "\r\n");
  size_t start = 0;
  int fields = 0;
  while (start < info.size()) {
    size_t end = info.find("\r\n", start);
    ASSERT_NE(end, std::string::npos) << "unterminated line at " << start;
    std::string line = info.substr(start, end - start);
    EXPECT_EQ(line.find('\n'), std::string::npos) << "bare LF in: " << line;
    if (!line.empty() && line[0] != '#') {
      size_t colon = line.find(':');
      EXPECT_TRUE(colon != std::string::npos && colon > 0) << "not field:value: " << line;
      ++fields;
    }
    start = end + 2;
  }
  EXPECT_GT(fields, 10);

  RedisReplyPtr server_only = RedisCmd(conn_.get(), {"INFO", "server"});
  ASSERT_NE(server_only, nullptr);
  std::string text(server_only->str, server_only->len);
  EXPECT_THAT(text, StartsWith("# Server\r\n"));
  EXPECT_EQ(text.find("# Clients"), std::string::npos);
}

// INFO commandstats: calls run, calls refused before running (arity), calls answered with an
// error; INFO with several sections (Redis 7.0) gives each once.
TEST_F(RespTest, InfoCommandstatsCountsCallsRefusalsAndErrors) {
  auto stats_of = [&](const std::string& command) {
    RedisReplyPtr r = RedisCmd(conn_.get(), {"INFO", "commandstats"});
    std::string text = r && r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : "";
    std::smatch m;
    std::array<int64_t, 3> counts{0, 0, 0};
    if (std::regex_search(text, m,
                          std::regex("cmdstat_" + command +
                                     ":calls=([0-9]+),rejected_calls=([0-9]+),failed_calls=([0-9]+)"
                                     "\r\n"))) {
      for (int i = 0; i < 3; ++i) counts[i] = std::stoll(m[i + 1]);
    }
    return counts;
  };
  const auto incr_before = stats_of("incrby");
  const auto strlen_before = stats_of("strlen");
  EXPECT_EQ(Cmd({"SET", "info:n", "1"}), "+OK");
  EXPECT_EQ(Cmd({"INCRBY", "info:n", "2"}), ":3");
  EXPECT_EQ(Cmd({"INCRBY", "info:n", "x"}), "-ERR value is not an integer or out of range");
  EXPECT_EQ(Cmd({"INCRBY", "info:n"}), "-ERR wrong number of arguments for 'incrby' command");
  EXPECT_EQ(Cmd({"STRLEN", "info:n"}), ":1");
  const auto incr_after = stats_of("incrby");
  const auto strlen_after = stats_of("strlen");
  EXPECT_EQ(incr_after[0] - incr_before[0], 2);  // run: the one that worked, the one that failed
  EXPECT_EQ(incr_after[1] - incr_before[1], 1);  // refused: wrong arity
  EXPECT_EQ(incr_after[2] - incr_before[2], 1);  // failed: not an integer
  EXPECT_EQ(strlen_after[0] - strlen_before[0], 1);
  EXPECT_EQ(strlen_after[2] - strlen_before[2], 0);

  RedisReplyPtr r = RedisCmd(conn_.get(), {"INFO", "cpu", "SERVER", "cpu", "sentinel"});
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->type, REDIS_REPLY_STRING) << ReplyText(r.get());
  std::string text(r->str, r->len);
  EXPECT_THAT(text, StartsWith("# Server\r\n"));
  EXPECT_THAT(text, HasSubstr("\r\n# CPU\r\nused_cpu_sys:"));
  EXPECT_EQ(text.find("used_cpu_user:"), text.rfind("used_cpu_user:"));
  EXPECT_EQ(text.find("# Memory"), std::string::npos);
}

TEST_F(RespTest, QuitAnswersOkThenCloses) {
  auto raw = TcpClient::Connect(server_->resp_port());
  ASSERT_NE(raw, nullptr);
  ASSERT_TRUE(raw->Send("*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n"));
  EXPECT_TRUE(raw->WaitForClose(Millis(5000)));
  EXPECT_EQ(raw->received(), "+OK\r\n") << "nothing after QUIT may be answered";

  // Through hiredis too: QUIT's reply, then the connection is gone.
  RedisConnection c = ConnectRedis(server_->resp_port());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"QUIT"}).get()), "+OK");
  EXPECT_EQ(RedisCmd(c.get(), {"PING"}), nullptr);
}

TEST_F(RespTest, PipelinesTenThousandCommands) {
  constexpr int kPairs = 5000;  // SET + GET each: 10 000 commands in one write
  for (int i = 0; i < kPairs; ++i) {
    std::string key = "pipe:" + std::to_string(i);
    std::string value = "value-" + std::to_string(i * 7);
    const char* set_argv[] = {"SET", key.c_str(), value.c_str()};
    const char* get_argv[] = {"GET", key.c_str()};
    ASSERT_EQ(redisAppendCommandArgv(conn_.get(), 3, set_argv, nullptr), REDIS_OK);
    ASSERT_EQ(redisAppendCommandArgv(conn_.get(), 2, get_argv, nullptr), REDIS_OK);
  }
  for (int i = 0; i < kPairs; ++i) {
    void* raw = nullptr;
    ASSERT_EQ(redisGetReply(conn_.get(), &raw), REDIS_OK)
        << "reply " << 2 * i << ": " << conn_->errstr;
    RedisReplyPtr set(static_cast<redisReply*>(raw));
    ASSERT_EQ(ReplyText(set.get()), "+OK") << "reply " << 2 * i;
    ASSERT_EQ(redisGetReply(conn_.get(), &raw), REDIS_OK) << conn_->errstr;
    RedisReplyPtr get(static_cast<redisReply*>(raw));
    ASSERT_EQ(ReplyText(get.get()), "$value-" + std::to_string(i * 7)) << "reply " << 2 * i + 1;
  }
  EXPECT_EQ(Int({"DBSIZE"}), kPairs);
}

TEST_F(RespTest, PipelineInOneRawWrite) {
  // The same through a raw socket: 10 000 PINGs in a single send(), answered in order.
  auto raw = TcpClient::Connect(server_->resp_port());
  ASSERT_NE(raw, nullptr);
  std::string batch;
  for (int i = 0; i < 10000; ++i)
    batch += "*2\r\n$4\r\nECHO\r\n$5\r\n" + std::to_string(10000 + i) + "\r\n";
  ASSERT_TRUE(raw->Send(batch, Millis(10000)));
  std::string expected;
  for (int i = 0; i < 10000; ++i) expected += "$5\r\n" + std::to_string(10000 + i) + "\r\n";
  ASSERT_TRUE(raw->ReadAtLeast(expected.size(), Millis(10000)))
      << "got " << raw->received().size() << " of " << expected.size() << " bytes";
  EXPECT_TRUE(raw->received() == expected) << "replies out of order or corrupted";
}

TEST_F(RespTest, PipelinedLargeRepliesAreAllAnswered) {
  // Three GETs of a 1 MiB value in one write: every reply must come without further input.
  const std::string big(1 << 20, 'L');
  ASSERT_EQ(Cmd({"SET", "big", big}), "+OK");
  auto raw = TcpClient::Connect(server_->resp_port());
  ASSERT_NE(raw, nullptr);
  std::string gets;
  for (int i = 0; i < 3; ++i) gets += "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n";
  ASSERT_TRUE(raw->Send(gets));
  const std::string one = "$1048576\r\n" + big + "\r\n";
  EXPECT_TRUE(raw->ReadAtLeast(3 * one.size(), Millis(5000)))
      << "got " << raw->received().size() << " of " << 3 * one.size()
      << " bytes: the rest of the pipeline was left unanswered";
  EXPECT_TRUE(raw->received() == one + one + one);
}

TEST_F(RespTest, BinarySafeValues) {
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
  std::string binary_key = std::string("bin\0key\r\n", 9);
  ASSERT_EQ(Cmd({"SET", binary_key, all_bytes}), "+OK");
  RedisReplyPtr r = RedisCmd(conn_.get(), {"GET", binary_key});
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->type, REDIS_REPLY_STRING);
  EXPECT_TRUE(std::string(r->str, r->len) == all_bytes) << "the 256 byte values came back altered";

  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131 + 7) % 256);
  ASSERT_EQ(Cmd({"SET", "big", big}), "+OK");
  r = RedisCmd(conn_.get(), {"GET", "big"});
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->type, REDIS_REPLY_STRING);
  ASSERT_EQ(r->len, big.size());
  EXPECT_TRUE(std::string(r->str, r->len) == big) << "the 1 MiB value came back altered";
  // MGET carries binary values too.
  RedisReplyPtr m = RedisCmd(conn_.get(), {"MGET", binary_key, "big"});
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(m->elements, 2u);
  EXPECT_TRUE(std::string(m->element[0]->str, m->element[0]->len) == all_bytes);
  EXPECT_EQ(m->element[1]->len, big.size());
}

TEST_F(RespTest, ErrorTextsMatchRedis) {
  EXPECT_EQ(Cmd({"FOO"}), "-ERR unknown command 'FOO', with args beginning with: ");
  EXPECT_EQ(Cmd({"foo", "a", "b c"}),
            "-ERR unknown command 'foo', with args beginning with: 'a' 'b c' ");
  EXPECT_EQ(Cmd({"GET"}), "-ERR wrong number of arguments for 'get' command");
  EXPECT_EQ(Cmd({"GET", "a", "b"}), "-ERR wrong number of arguments for 'get' command");
  EXPECT_EQ(Cmd({"SET", "a"}), "-ERR wrong number of arguments for 'set' command");
  EXPECT_EQ(Cmd({"Mget"}), "-ERR wrong number of arguments for 'mget' command");
  EXPECT_EQ(Cmd({"PING", "x", "y", "z"}), "-ERR wrong number of arguments for 'ping' command");
  EXPECT_EQ(Cmd({"ECHO"}), "-ERR wrong number of arguments for 'echo' command");
  EXPECT_EQ(Cmd({"AUTH", "pw"}),
            "-ERR AUTH <password> called without any password configured for the default user. "
            "Are you sure your configuration is correct?");
  // Errors do not close the connection.
  EXPECT_EQ(Cmd({"PING"}), "+PONG");
}

TEST_F(RespTest, InlineCommands) {
  auto raw = TcpClient::Connect(server_->resp_port());
  ASSERT_NE(raw, nullptr);
  ASSERT_TRUE(raw->Send("PING\r\nSET inl \"a b\"\r\nGET inl\nECHO 'x y'\r\n"));
  const std::string expected = "+PONG\r\n+OK\r\n$3\r\na b\r\n$3\r\nx y\r\n";
  ASSERT_TRUE(raw->ReadAtLeast(expected.size()));
  EXPECT_EQ(raw->received(), expected);
}

// --- servers with their own configuration -------------------------------------------------

TEST(RespAuthTest, RequirePass) {
  std::string error;
  auto server = ServerProcess::Start(
      ServerOptions{.config_json = R"({"resp": {"requirepass": "s3cret"}})", .extra_args = {}},
      &error);
  ASSERT_NE(server, nullptr) << error;

  RedisConnection c = ConnectRedis(server->resp_port());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"GET", "k"}).get()), "-NOAUTH Authentication required.");
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"PING"}).get()), "-NOAUTH Authentication required.");
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"AUTH", "wrong"}).get()),
            "-WRONGPASS invalid username-password pair or user is disabled.");
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"AUTH", "default", "wrong"}).get()),
            "-WRONGPASS invalid username-password pair or user is disabled.");
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"AUTH", "someone", "s3cret"}).get()),
            "-WRONGPASS invalid username-password pair or user is disabled.");
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"SET", "k", "v"}).get()),
            "-NOAUTH Authentication required.");
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"AUTH", "s3cret"}).get()), "+OK");
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"SET", "k", "v"}).get()), "+OK");
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"GET", "k"}).get()), "$v");

  // HELLO 2 AUTH authenticates a fresh connection in one step.
  RedisConnection h = ConnectRedis(server->resp_port());
  ASSERT_NE(h, nullptr);
  EXPECT_THAT(ReplyText(RedisCmd(h.get(), {"HELLO", "2"}).get()),
              StartsWith("-NOAUTH HELLO must be called with the client already authenticated"));
  EXPECT_EQ(ReplyText(RedisCmd(h.get(), {"HELLO", "2", "AUTH", "default", "nope"}).get()),
            "-WRONGPASS invalid username-password pair or user is disabled.");
  RedisReplyPtr hello = RedisCmd(h.get(), {"HELLO", "2", "AUTH", "default", "s3cret"});
  ASSERT_NE(hello, nullptr);
  EXPECT_EQ(hello->type, REDIS_REPLY_ARRAY) << ReplyText(hello.get());
  EXPECT_EQ(ReplyText(RedisCmd(h.get(), {"GET", "k"}).get()), "$v");

  // Before AUTH the parser applies Redis's unauthenticated limits (10 elements, 16 KiB bulks).
  auto raw = TcpClient::Connect(server->resp_port());
  ASSERT_NE(raw, nullptr);
  ASSERT_TRUE(raw->Send("*11\r\n"));
  ASSERT_TRUE(raw->ReadUntil("\r\n"));
  EXPECT_EQ(raw->received(), "-ERR Protocol error: unauthenticated multibulk length\r\n");
  EXPECT_TRUE(raw->WaitForClose());
  raw = TcpClient::Connect(server->resp_port());
  ASSERT_NE(raw, nullptr);
  ASSERT_TRUE(raw->Send("*2\r\n$3\r\nGET\r\n$16385\r\n"));
  ASSERT_TRUE(raw->ReadUntil("\r\n"));
  EXPECT_EQ(raw->received(), "-ERR Protocol error: unauthenticated bulk length\r\n");
  EXPECT_TRUE(raw->WaitForClose());
  // After AUTH they no longer apply.
  raw = TcpClient::Connect(server->resp_port());
  ASSERT_NE(raw, nullptr);
  std::string big(20000, 'x');
  ASSERT_TRUE(raw->Send("*2\r\n$4\r\nAUTH\r\n$6\r\ns3cret\r\n*2\r\n$4\r\nECHO\r\n$20000\r\n" + big +
                        "\r\n"));
  ASSERT_TRUE(raw->ReadAtLeast(5 + 8 + big.size() + 2));
  EXPECT_EQ(raw->received(), "+OK\r\n$20000\r\n" + big + "\r\n");

  ExitStatus status = server->Stop();
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(server->Stderr().find("s3cret"), std::string::npos) << "the password was logged";
}

TEST(RespIdleTimeoutTest, ClosesIdleClients) {
  // resp.idle_timeout_s is Redis's "timeout": a client idle that long is disconnected.
  std::string error;
  auto server = ServerProcess::Start(
      ServerOptions{.config_json = R"({"resp": {"idle_timeout_s": 1}})", .extra_args = {}}, &error);
  ASSERT_NE(server, nullptr) << error;
  RedisConnection c = ConnectRedis(server->resp_port());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"CONFIG", "GET", "timeout"}).get()), "[$timeout, $1]");
  auto idle = TcpClient::Connect(server->resp_port());
  ASSERT_NE(idle, nullptr);
  ASSERT_TRUE(idle->Send("*1\r\n$4\r\nPING\r\n"));
  ASSERT_TRUE(idle->ReadUntil("+PONG\r\n"));
  // Redis checks timeouts about once a second: allow the timeout plus a few seconds.
  EXPECT_TRUE(idle->WaitForClose(Millis(5000))) << "an idle client was never disconnected";
}

TEST(RespMaxClientsTest, FourthConnectionIsRefused) {
  std::string error;
  auto server = ServerProcess::Start(
      ServerOptions{.config_json = R"({"shedding": {"max_clients": 3}})", .extra_args = {}},
      &error);
  ASSERT_NE(server, nullptr) << error;

  std::vector<RedisConnection> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(ConnectRedis(server->resp_port()));
    ASSERT_NE(clients.back(), nullptr);
    // A reply proves the server has accepted and counted this connection.
    ASSERT_EQ(ReplyText(RedisCmd(clients.back().get(), {"PING"}).get()), "+PONG");
  }
  auto fourth = TcpClient::Connect(server->resp_port());
  ASSERT_NE(fourth, nullptr);
  EXPECT_TRUE(fourth->WaitForClose(Millis(5000)));
  EXPECT_EQ(fourth->received(), "-ERR max number of clients reached\r\n");
  // HTTP connections count towards the same limit.
  auto http = HttpRequestOnce(server->http_port(), "GET", "/healthz");
  ASSERT_TRUE(http.has_value());
  EXPECT_EQ(http->status, 503);
  EXPECT_TRUE(http->Has("retry-after"));

  // The existing clients are unaffected; once one leaves, a new client gets in.
  EXPECT_EQ(ReplyText(RedisCmd(clients[0].get(), {"PING"}).get()), "+PONG");
  clients.pop_back();
  RedisConnection late;
  EXPECT_TRUE(WaitFor(
      [&] {
        late = ConnectRedis(server->resp_port());
        return late != nullptr && ReplyText(RedisCmd(late.get(), {"PING"}).get()) == "+PONG";
      },
      Millis(5000)));

  RedisReplyPtr info = RedisCmd(clients[0].get(), {"INFO", "stats"});
  ASSERT_NE(info, nullptr);
  std::string stats(info->str, info->len);
  size_t at = stats.find("rejected_connections:");
  ASSERT_NE(at, std::string::npos) << stats;
  // The RESP and the HTTP refusal at least (the retry loop above may add more).
  EXPECT_GE(std::stoll(stats.substr(at + 21)), 2);
}

}  // namespace
}  // namespace corral::integration
