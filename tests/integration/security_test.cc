// Both doors locked when asked (SPEC.md "Security"): users as Redis's ACL has them on RESP, the
// same users over HTTP (bearer tokens, Basic), secrets from files and the environment, and
// protected mode. Driven by hiredis, raw HTTP, redis-cli and curl against the real binary.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/integration/server_process.h"

namespace corral::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kNoPermKey[] =
    "-NOPERM this user has no permissions to access one of the keys used as arguments";
constexpr char kWrongPass[] = "-WRONGPASS invalid username-password pair or user is disabled.";

// app: reads and writes plain:*, only reads ro:*, no dangerous commands. reader: reads anything.
// default: requirepass, may do anything.
constexpr char kUsersConfig[] = R"({
  "resp": {"requirepass": "s3cret"},
  "users": {
    "app": {"acl": "on ~plain:* %R~ro:* +@all -@dangerous", "password": "app-pw",
            "tokens": ["tok-app-0123456789"]},
    "reader": {"acl": "on ~* +@read", "tokens": ["tok-reader-0123456789"]}
  }
})";

std::string Base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n = uint8_t(in[i]) << 16 | uint8_t(in[i + 1]) << 8 | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(n >> s) & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t n = uint8_t(in[i]) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t n = uint8_t(in[i]) << 16 | uint8_t(in[i + 1]) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string Basic(std::string_view user, std::string_view password) {
  return "Authorization: Basic " + Base64(std::string(user) + ":" + std::string(password));
}

std::string Bearer(std::string_view token) { return "Authorization: Bearer " + std::string(token); }

class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string error;
    server_ =
        ServerProcess::Start(ServerOptions{.config_json = kUsersConfig, .extra_args = {}}, &error)
            .release();
    ASSERT_NE(server_, nullptr) << error;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  int Status(std::string_view method, std::string_view target, std::string_view body,
             const std::vector<std::string>& headers, std::string* text = nullptr) {
    auto res = HttpRequestOnce(server_->http_port(), method, target, body, headers);
    if (!res) return -1;
    if (text) *text = res->body;
    return res->status;
  }

  // A RESP connection logged in as `user`.
  RedisConnection As(const std::string& user, const std::string& password) {
    RedisConnection c = ConnectRedis(server_->resp_port());
    EXPECT_NE(c, nullptr);
    if (c) {
      EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"AUTH", user, password}).get()), "+OK");
    }
    return c;
  }

  static ServerProcess* server_;
};
ServerProcess* SecurityTest::server_ = nullptr;

TEST_F(SecurityTest, HttpCacheRoutesNeedCredentialsAndARefusalChangesNothing) {
  RedisConnection admin = As("default", "s3cret");
  ASSERT_EQ(ReplyText(RedisCmd(admin.get(), {"SET", "plain:k", "v1"}).get()), "+OK");

  // No credentials: 401 on every method, with both challenges; nothing changes.
  for (std::string_view method : {"GET", "PUT", "DELETE"}) {
    auto res = HttpRequestOnce(server_->http_port(), method, "/v1/cache/plain/k",
                               method == "PUT" ? "evil" : "", {});
    ASSERT_TRUE(res) << method;
    EXPECT_EQ(res->status, 401) << method;
    EXPECT_THAT(res->Header("www-authenticate"), HasSubstr("realm=\"corral\"")) << method;
    EXPECT_THAT(res->body, HasSubstr("authentication required")) << method;
  }
  // Wrong credentials of every form: 401.
  for (const std::string& header :
       {Bearer("tok-app-wrong"), Basic("app", "wrong"), Basic("nobody", "app-pw"),
        std::string("Authorization: Basic !!!notbase64"), std::string("Authorization: Digest x"),
        // Lengths that are not a multiple of 4 (a partial last group; the fuzzer's overflow).
        std::string("Authorization: Basic YXBwOnB3x"),
        std::string("Authorization: Basic YXBwOnB3xy"),
        "Authorization: Basic YXBwOnB3" + std::string(99, '0'), Basic("default", "wrong"),
        std::string("Authorization: Bearer")}) {
    EXPECT_EQ(Status("PUT", "/v1/cache/plain/k", "evil", {header}), 401) << header;
    EXPECT_EQ(Status("DELETE", "/v1/cache/plain/k", "", {header}), 401) << header;
  }
  EXPECT_EQ(ReplyText(RedisCmd(admin.get(), {"GET", "plain:k"}).get()), "$v1");

  // Probes and (by default) metrics stay open.
  EXPECT_EQ(Status("GET", "/healthz", "", {}), 200);
  EXPECT_EQ(Status("GET", "/readyz", "", {}), 200);
  EXPECT_EQ(Status("GET", "/metrics", "", {}), 200);
  EXPECT_EQ(Status("GET", "/v1/stats", "", {}), 200);
}

TEST_F(SecurityTest, TokensAndBasicMapOntoTheSameUsersAsResp) {
  std::string body;
  EXPECT_EQ(Status("PUT", "/v1/cache/plain/t", "from-http", {Bearer("tok-app-0123456789")}), 204);
  EXPECT_EQ(Status("GET", "/v1/cache/plain/t", "", {Basic("app", "app-pw")}, &body), 200);
  EXPECT_EQ(body, "from-http");
  RedisConnection app = As("app", "app-pw");
  EXPECT_EQ(ReplyText(RedisCmd(app.get(), {"GET", "plain:t"}).get()), "$from-http");

  // app only reads ro:*, and nothing outside its patterns.
  EXPECT_EQ(Status("GET", "/v1/cache/ro/1", "", {Bearer("tok-app-0123456789")}), 404);
  EXPECT_EQ(Status("PUT", "/v1/cache/ro/1", "x", {Bearer("tok-app-0123456789")}, &body), 403);
  EXPECT_THAT(body, HasSubstr("user 'app' may not write key ro:1"));
  EXPECT_EQ(Status("GET", "/v1/cache/other/1", "", {Bearer("tok-app-0123456789")}), 403);

  // reader reads anything and writes nothing; its refused write changes nothing.
  EXPECT_EQ(Status("GET", "/v1/cache/plain/t", "", {Bearer("tok-reader-0123456789")}, &body), 200);
  EXPECT_EQ(body, "from-http");
  EXPECT_EQ(Status("PUT", "/v1/cache/plain/t", "evil", {Bearer("tok-reader-0123456789")}), 403);
  EXPECT_EQ(Status("DELETE", "/v1/cache/plain/t", "", {Bearer("tok-reader-0123456789")}), 403);
  EXPECT_EQ(ReplyText(RedisCmd(app.get(), {"GET", "plain:t"}).get()), "$from-http");

  // requirepass is the default user's password on both doors.
  EXPECT_EQ(Status("DELETE", "/v1/cache/plain/t", "", {Basic("default", "s3cret")}), 204);
  EXPECT_EQ(ReplyText(RedisCmd(app.get(), {"GET", "plain:t"}).get()), "(nil)");
}

TEST_F(SecurityTest, RespUsersGetRedisAclErrors) {
  RedisConnection app = As("app", "app-pw");
  EXPECT_EQ(ReplyText(RedisCmd(app.get(), {"ACL", "WHOAMI"}).get()), "$app");
  EXPECT_EQ(ReplyText(RedisCmd(app.get(), {"SET", "plain:a", "1"}).get()), "+OK");
  EXPECT_EQ(ReplyText(RedisCmd(app.get(), {"GET", "ro:a"}).get()), "(nil)");
  EXPECT_EQ(ReplyText(RedisCmd(app.get(), {"SET", "ro:a", "1"}).get()), kNoPermKey);
  EXPECT_EQ(ReplyText(RedisCmd(app.get(), {"GET", "order:1"}).get()), kNoPermKey);
  EXPECT_EQ(ReplyText(RedisCmd(app.get(), {"MGET", "plain:a", "order:1"}).get()), kNoPermKey);
  EXPECT_EQ(ReplyText(RedisCmd(app.get(), {"FLUSHALL"}).get()),
            "-NOPERM this user has no permissions to run the 'flushall' command");
  EXPECT_EQ(ReplyText(RedisCmd(app.get(), {"CONFIG", "SET", "maxmemory", "1"}).get()),
            "-NOPERM this user has no permissions to run the 'config|set' command");
  EXPECT_EQ(ReplyText(RedisCmd(app.get(), {"GET", "plain:a"}).get()), "$1");
  RedisReplyPtr info = RedisCmd(app.get(), {"CLIENT", "INFO"});
  EXPECT_THAT(ReplyText(info.get()), HasSubstr(" user=app "));
  // -@dangerous takes the subcommands Redis files under it, not their container.
  EXPECT_EQ(ReplyText(RedisCmd(app.get(), {"CLIENT", "KILL", "ID", "1"}).get()),
            "-NOPERM this user has no permissions to run the 'client|kill' command");
  EXPECT_EQ(ReplyText(RedisCmd(app.get(), {"CLIENT", "LIST"}).get()),
            "-NOPERM this user has no permissions to run the 'client|list' command");
  EXPECT_EQ(ReplyText(RedisCmd(app.get(), {"CLIENT", "NO-EVICT", "on"}).get()),
            "-NOPERM this user has no permissions to run the 'client|no-evict' command");
  EXPECT_EQ(ReplyText(RedisCmd(app.get(), {"SLOWLOG", "GET"}).get()),
            "-NOPERM this user has no permissions to run the 'slowlog|get' command");
  EXPECT_EQ(RedisCmd(app.get(), {"CLIENT", "ID"})->type, REDIS_REPLY_INTEGER);
  EXPECT_EQ(ReplyText(RedisCmd(app.get(), {"CLIENT", "SETNAME", "worker"}).get()), "+OK");
  std::string dangerous = ReplyText(RedisCmd(app.get(), {"ACL", "CAT", "dangerous"}).get());
  EXPECT_THAT(dangerous, HasSubstr("$client|kill"));
  EXPECT_THAT(dangerous, HasSubstr("$flushall"));
  EXPECT_EQ(dangerous.find("$client,"), std::string::npos) << dangerous;
  EXPECT_EQ(dangerous.find("client|id"), std::string::npos) << dangerous;

  RedisConnection reader = ConnectRedis(server_->resp_port());
  ASSERT_NE(reader, nullptr);
  // reader has no password: only its token, which RESP does not take.
  EXPECT_EQ(ReplyText(RedisCmd(reader.get(), {"AUTH", "reader", "anything"}).get()), kWrongPass);
  EXPECT_EQ(ReplyText(RedisCmd(reader.get(), {"AUTH", "app", "s3cret"}).get()), kWrongPass);
  RedisReplyPtr hello = RedisCmd(reader.get(), {"HELLO", "2", "AUTH", "app", "app-pw"});
  ASSERT_NE(hello, nullptr);
  EXPECT_EQ(hello->type, REDIS_REPLY_ARRAY) << ReplyText(hello.get());
  EXPECT_EQ(ReplyText(RedisCmd(reader.get(), {"ACL", "WHOAMI"}).get()), "$app");

  // ACL LIST shows digests, never a password.
  RedisConnection admin = As("default", "s3cret");
  std::string list = ReplyText(RedisCmd(admin.get(), {"ACL", "LIST"}).get());
  EXPECT_THAT(list, HasSubstr("user app on #"));
  EXPECT_THAT(list, HasSubstr("~plain:* %R~ro:*"));
  EXPECT_THAT(list, HasSubstr("user default on #"));  // requirepass is its password
  EXPECT_EQ(list.find("app-pw"), std::string::npos);
  EXPECT_EQ(list.find("s3cret"), std::string::npos);
}

TEST_F(SecurityTest, AclSetuserAndDeluserTakeEffectOnLiveConnectionsAndBothDoors) {
  RedisConnection admin = As("default", "s3cret");
  ASSERT_EQ(ReplyText(RedisCmd(admin.get(),
                               {"ACL", "SETUSER", "temp", "on", ">tpw", "~t:*", "+get", "+set"})
                          .get()),
            "+OK");
  EXPECT_THAT(
      ReplyText(RedisCmd(admin.get(), {"ACL", "SETUSER", "temp", "+@nonsense"}).get()),
      StartsWith("-ERR Error in ACL SETUSER modifier '+@nonsense': Unknown command or category"));
  EXPECT_EQ(ReplyText(RedisCmd(admin.get(), {"ACL", "DELUSER", "default"}).get()),
            "-ERR The 'default' user cannot be removed");

  RedisConnection temp = As("temp", "tpw");
  EXPECT_EQ(ReplyText(RedisCmd(temp.get(), {"SET", "t:1", "x"}).get()), "+OK");
  EXPECT_EQ(Status("GET", "/v1/cache/t/1", "", {Basic("temp", "tpw")}), 200);

  // Taking SET away applies to the open connection's next command, and to HTTP.
  ASSERT_EQ(ReplyText(RedisCmd(admin.get(), {"ACL", "SETUSER", "temp", "-set"}).get()), "+OK");
  EXPECT_EQ(ReplyText(RedisCmd(temp.get(), {"SET", "t:1", "y"}).get()),
            "-NOPERM this user has no permissions to run the 'set' command");
  EXPECT_EQ(Status("PUT", "/v1/cache/t/1", "y", {Basic("temp", "tpw")}), 403);
  EXPECT_EQ(ReplyText(RedisCmd(temp.get(), {"GET", "t:1"}).get()), "$x");

  // Deleting the user closes its connections and ends its credentials.
  EXPECT_EQ(ReplyText(RedisCmd(admin.get(), {"ACL", "DELUSER", "temp", "ghost"}).get()), ":1");
  EXPECT_EQ(RedisCmd(temp.get(), {"GET", "t:1"}), nullptr);
  EXPECT_EQ(Status("GET", "/v1/cache/t/1", "", {Basic("temp", "tpw")}), 401);
  EXPECT_EQ(ReplyText(RedisCmd(admin.get(), {"ACL", "USERS"}).get()), "[$app, $default, $reader]");
}

// Channel rules (`&pattern`), as Redis 7.0 checks them: PUBLISH and SUBSCRIBE need a channel one
// of the user's patterns matches, PSUBSCRIBE one of the patterns itself; a user without channel
// rules (Redis 7.0's default for a new user) may use none.
TEST_F(SecurityTest, ChannelRulesLimitPublishAndSubscribe) {
  RedisConnection admin = As("default", "s3cret");
  ASSERT_EQ(ReplyText(RedisCmd(admin.get(),
                               {"ACL", "SETUSER", "news", "on", ">npw", "~*", "&news:*", "+@all"})
                          .get()),
            "+OK");
  ASSERT_EQ(
      ReplyText(
          RedisCmd(admin.get(), {"ACL", "SETUSER", "mute", "on", ">mpw", "~*", "+@all"}).get()),
      "+OK");
  const std::string refused =
      "-NOPERM this user has no permissions to access one of the channels used as arguments";
  RedisConnection news = As("news", "npw");
  EXPECT_EQ(ReplyText(RedisCmd(news.get(), {"PUBLISH", "news:today", "hi"}).get()), ":0");
  EXPECT_EQ(ReplyText(RedisCmd(news.get(), {"PUBLISH", "sport", "hi"}).get()), refused);
  EXPECT_EQ(ReplyText(RedisCmd(news.get(), {"PSUBSCRIBE", "news:t*"}).get()), refused)
      << "a pattern must be one of the user's, literally";
  EXPECT_EQ(ReplyText(RedisCmd(news.get(), {"SUBSCRIBE", "news:a", "sport"}).get()), refused);
  EXPECT_EQ(ReplyText(RedisCmd(news.get(), {"PSUBSCRIBE", "news:*"}).get()),
            "[$psubscribe, $news:*, :1]");
  RedisConnection mute = As("mute", "mpw");
  EXPECT_EQ(ReplyText(RedisCmd(mute.get(), {"PUBLISH", "news:today", "hi"}).get()), refused);
  EXPECT_EQ(ReplyText(RedisCmd(mute.get(), {"SET", "k", "v"}).get()), "+OK");
  // allchannels lifts it.
  ASSERT_EQ(ReplyText(RedisCmd(admin.get(), {"ACL", "SETUSER", "mute", "allchannels"}).get()),
            "+OK");
  EXPECT_EQ(ReplyText(RedisCmd(mute.get(), {"PUBLISH", "sport", "hi"}).get()), ":0");
  EXPECT_EQ(ReplyText(RedisCmd(admin.get(), {"ACL", "DELUSER", "news", "mute"}).get()), ":2");
}

// As Redis 7.0: ACL SETUSER that narrows a user's channel rules closes its connections that
// subscribe to what the rules no longer allow, at once, with no command from them; ACL DELUSER
// closes every connection of the user. The others stay, and keep their messages.
TEST_F(SecurityTest, AclChangesCloseTheConnectionsTheyNoLongerAllow) {
  RedisConnection admin = As("default", "s3cret");
  ASSERT_EQ(ReplyText(RedisCmd(admin.get(),
                               {"ACL", "SETUSER", "feed", "on", ">fpw", "~*", "&news:*", "+@all"})
                          .get()),
            "+OK");
  // Raw connections: they are idle subscribers, and the test sees the server close them.
  auto subscriber = [&](std::string_view command) {
    std::unique_ptr<TcpClient> c = TcpClient::Connect(server_->resp_port());
    EXPECT_NE(c, nullptr);
    if (c == nullptr) return c;
    EXPECT_TRUE(c->Send("AUTH feed fpw\r\n"));
    EXPECT_TRUE(c->ReadUntil("+OK\r\n"));
    c->Take();
    EXPECT_TRUE(c->Send(command));
    EXPECT_TRUE(c->ReadUntil(":1\r\n")) << c->received();
    c->Take();
    return c;
  };
  std::unique_ptr<TcpClient> channel = subscriber("SUBSCRIBE news:a\r\n");
  std::unique_ptr<TcpClient> pattern = subscriber("PSUBSCRIBE news:*\r\n");
  ASSERT_NE(channel, nullptr);
  ASSERT_NE(pattern, nullptr);
  RedisConnection idle = As("feed", "fpw");

  // news:* no longer one of the user's patterns: the pattern subscriber goes; news:a is allowed.
  ASSERT_EQ(ReplyText(RedisCmd(admin.get(),
                               {"ACL", "SETUSER", "feed", "resetchannels", "&news:a", "&news:b"})
                          .get()),
            "+OK");
  EXPECT_TRUE(pattern->WaitForClose());
  EXPECT_EQ(ReplyText(RedisCmd(admin.get(), {"PUBLISH", "news:a", "still"}).get()), ":1");
  EXPECT_TRUE(channel->ReadUntil("still")) << channel->received();
  EXPECT_FALSE(channel->peer_closed());

  // Rules that allow more close nothing; rules without news:a close its subscriber.
  ASSERT_EQ(ReplyText(RedisCmd(admin.get(), {"ACL", "SETUSER", "feed", "&sport"}).get()), "+OK");
  EXPECT_EQ(ReplyText(RedisCmd(idle.get(), {"PING"}).get()), "+PONG");
  ASSERT_EQ(ReplyText(RedisCmd(admin.get(), {"ACL", "SETUSER", "feed", "resetchannels"}).get()),
            "+OK");
  EXPECT_TRUE(channel->WaitForClose());
  EXPECT_EQ(ReplyText(RedisCmd(idle.get(), {"PING"}).get()), "+PONG")
      << "a connection with no subscription stays";

  // DELUSER: the user's idle connection is closed without a command from it.
  const int fd = idle->fd;
  ASSERT_EQ(ReplyText(RedisCmd(admin.get(), {"ACL", "DELUSER", "feed"}).get()), ":1");
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1) << "the connection was not closed";
  char byte;
  EXPECT_EQ(recv(fd, &byte, 1, 0), 0) << "end of stream";
  EXPECT_EQ(ReplyText(RedisCmd(admin.get(), {"PING"}).get()), "+PONG");
}

TEST_F(SecurityTest, RedisCliAndCurlWorkWithTheUsers) {
  for (const char* tool : {"redis-cli", "curl"}) {
    ASSERT_TRUE(InPath(tool)) << tool << " is not in PATH: run deploy/install-deps.sh";
  }
  const std::string port = std::to_string(server_->resp_port());
  ProcessResult set = RunProcess({"redis-cli", "-p", port, "--user", "app", "--pass", "app-pw",
                                  "--no-auth-warning", "SET", "plain:cli", "hi"});
  EXPECT_EQ(set.out, "OK\n") << set.err;
  ProcessResult denied = RunProcess({"redis-cli", "-p", port, "--user", "app", "--pass", "app-pw",
                                     "--no-auth-warning", "FLUSHALL"});
  EXPECT_THAT(denied.out, HasSubstr("NOPERM")) << denied.err;
  ProcessResult wrong = RunProcess({"redis-cli", "-p", port, "--user", "app", "--pass", "nope",
                                    "--no-auth-warning", "GET", "plain:cli"});
  EXPECT_THAT(wrong.out + wrong.err, HasSubstr("WRONGPASS"));

  const std::string url =
      "http://127.0.0.1:" + std::to_string(server_->http_port()) + "/v1/cache/plain/cli";
  ProcessResult basic = RunProcess({"curl", "-sS", "-u", "app:app-pw", url});
  EXPECT_EQ(basic.out, "hi") << basic.err;
  ProcessResult bearer =
      RunProcess({"curl", "-sS", "-H", "Authorization: Bearer tok-reader-0123456789", url});
  EXPECT_EQ(bearer.out, "hi") << bearer.err;
  ProcessResult none = RunProcess({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url});
  EXPECT_EQ(none.out, "401") << none.err;
}

// ---- configurations of their own ----

std::string WriteTempFile(const std::string& text) {
  std::string path = ::testing::TempDir() + "corral-secret-XXXXXX";
  int fd = mkstemp(path.data());
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  return path;
}

TEST(SecurityConfigTest, SecretsComeFromFilesAndTheEnvironmentAndAreNeverPrinted) {
  const std::string password_file = WriteTempFile("file-pw-1\nfile-pw-2  \n\n");
  const std::string token_file = WriteTempFile("tok-file-0123456789\n");
  setenv("CORRAL_TEST_APP_PASSWORD", "env-pw", 1);
  setenv("CORRAL_TEST_APP_TOKEN", "tok-env-0123456789", 1);
  const std::string config = R"({"users": {"app": {"acl": "on ~* +@all", "password_file": ")" +
                             password_file +
                             R"(", "password_env": "CORRAL_TEST_APP_PASSWORD", "token_file": ")" +
                             token_file + R"(", "token_env": "CORRAL_TEST_APP_TOKEN"}}})";
  std::string error;
  auto server =
      ServerProcess::Start(ServerOptions{.config_json = config, .extra_args = {}}, &error);
  ASSERT_NE(server, nullptr) << error;
  for (const char* pw : {"file-pw-1", "file-pw-2", "env-pw"}) {
    RedisConnection c = ConnectRedis(server->resp_port());
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(ReplyText(RedisCmd(c.get(), {"AUTH", "app", pw}).get()), "+OK") << pw;
  }
  // No credential configured for default: it is off, so nothing is open by accident.
  RedisConnection anonymous = ConnectRedis(server->resp_port());
  ASSERT_NE(anonymous, nullptr);
  EXPECT_EQ(ReplyText(RedisCmd(anonymous.get(), {"GET", "k"}).get()),
            "-NOAUTH Authentication required.");
  for (const char* token : {"tok-file-0123456789", "tok-env-0123456789"}) {
    EXPECT_EQ(
        HttpRequestOnce(server->http_port(), "PUT", "/v1/cache/k/1", "v", {Bearer(token)})->status,
        204)
        << token;
  }
  EXPECT_EQ(HttpRequestOnce(server->http_port(), "GET", "/v1/cache/k/1", "", {})->status, 401);
  for (const char* secret :
       {"file-pw-1", "file-pw-2", "env-pw", "tok-file-0123456789", "tok-env-0123456789"}) {
    EXPECT_EQ(server->Stderr().find(secret), std::string::npos) << secret;
  }
  server->Stop();
  std::filesystem::remove(password_file);
  std::filesystem::remove(token_file);
  unsetenv("CORRAL_TEST_APP_PASSWORD");
  unsetenv("CORRAL_TEST_APP_TOKEN");
}

TEST(SecurityConfigTest, ADoorLeftOpenByAccidentOrABadRuleIsAConfigErrorNamingTheField) {
  struct Case {
    std::string config, field, problem;
  };
  for (
      const Case& c : std::vector<Case>{
          {R"({"users": {"default": {"acl": "on nopass"}, "app": {"acl": "on", "password": "p"}}})",
           "users.default.acl", "leaves every door open"},
          {R"({"users": {"app": {"acl": "on +@nonsense", "password": "p"}}})", "users.app.acl",
           "Error in ACL SETUSER modifier '+@nonsense'"},
          {R"({"users": {"app": {"password_env": "CORRAL_TEST_SURELY_UNSET"}}})",
           "users.app.password_env", "CORRAL_TEST_SURELY_UNSET is not set"},
          {R"({"users": {"a": {"tokens": ["same-token"]}, "b": {"tokens": ["same-token"]}}})",
           "users.a.tokens", "each token names one user"},
      }) {
    const std::string file = WriteTempFile(c.config);
    ProcessResult r = RunProcess({ServerBinary(), "--check-config", file});
    EXPECT_FALSE(r.status.ok()) << c.config;
    EXPECT_THAT(r.err, HasSubstr(c.field + ": ")) << c.config;
    EXPECT_THAT(r.err, HasSubstr(c.problem)) << c.config;
    EXPECT_EQ(r.out.find("same-token"), std::string::npos);
    std::filesystem::remove(file);
  }
  // A good one: accepted, and --check-config prints no secret.
  const std::string file = WriteTempFile(
      R"({"resp": {"requirepass": "rp-secret"}, "users": {"app": {"acl": "on ~* +@read", "password": "app-secret", "tokens": ["tok-secret"]}}})");
  ProcessResult ok = RunProcess({ServerBinary(), "--check-config", file});
  EXPECT_TRUE(ok.status.ok()) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("auth=on users=app"));
  for (const char* secret : {"rp-secret", "app-secret", "tok-secret"}) {
    EXPECT_EQ((ok.out + ok.err).find(secret), std::string::npos) << secret;
  }
  std::filesystem::remove(file);
}

TEST(SecurityConfigTest, ClosedMetricsNeedAUserAllowedToRunInfo) {
  const std::string config = R"({"http": {"open_metrics": false}, "resp": {"requirepass": "rp"},
      "users": {"app": {"acl": "on ~* +@all -@dangerous", "password": "pw"}}})";
  std::string error;
  auto server =
      ServerProcess::Start(ServerOptions{.config_json = config, .extra_args = {}}, &error);
  ASSERT_NE(server, nullptr) << error;
  for (const char* route : {"/metrics", "/v1/stats"}) {
    auto status = [&](const std::vector<std::string>& headers) {
      auto res = HttpRequestOnce(server->http_port(), "GET", route, "", headers);
      return res ? res->status : -1;
    };
    EXPECT_EQ(status({}), 401) << route;
    EXPECT_EQ(status({Basic("app", "pw")}), 403) << route;  // INFO is @dangerous
    EXPECT_EQ(status({Basic("default", "rp")}), 200) << route;
  }
  // The probes stay open.
  EXPECT_EQ(HttpRequestOnce(server->http_port(), "GET", "/readyz")->status, 200);
  EXPECT_EQ(HttpRequestOnce(server->http_port(), "GET", "/healthz")->status, 200);
}

// This machine's first IPv4 address that is not loopback, or "" when it has none.
std::string NonLoopbackAddress() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string found;
  for (ifaddrs* a = list; a != nullptr && found.empty(); a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    auto* in = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
    if ((ntohl(in->sin_addr.s_addr) >> 24) == 127) continue;
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    found = text;
  }
  freeifaddrs(list);
  return found;
}

// Sends `request` to address:port and returns everything received until the peer closes (or 5 s).
std::string Exchange(const std::string& address, uint16_t port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  inet_pton(AF_INET, address.c_str(), &to.sin_addr);
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string received;
  if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0) {
    (void)!write(fd, request.data(), request.size());
    char buf[4096];
    for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) received.append(buf, n);
  }
  close(fd);
  return received;
}

TEST(ProtectedModeTest, WithoutCredentialsClientsBeyondLoopbackAreToldHowToFixIt) {
  const std::string address = NonLoopbackAddress();
  if (address.empty()) GTEST_SKIP() << "this machine has no non-loopback IPv4 address";
  const std::vector<std::string> listen_all = {"--resp", "0.0.0.0:0", "--http", "0.0.0.0:0"};
  const std::string ping = "PING\r\n";
  const std::string get = "GET /v1/cache/k/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const std::string probe = "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  {
    std::string error;
    auto server =
        ServerProcess::Start(ServerOptions{.config_json = "{}", .extra_args = listen_all}, &error);
    ASSERT_NE(server, nullptr) << error;
    EXPECT_THAT(Exchange(address, server->resp_port(), ping),
                StartsWith("-DENIED corral is running in protected mode"));
    std::string http = Exchange(address, server->http_port(), get);
    EXPECT_THAT(http, StartsWith("HTTP/1.1 403"));
    EXPECT_THAT(http, HasSubstr("\"protected_mode\": false"));
    // The probes stay open (a kubelet probes from the node's address), and loopback is served.
    EXPECT_THAT(Exchange(address, server->http_port(), probe), StartsWith("HTTP/1.1 200"));
    EXPECT_EQ(Exchange("127.0.0.1", server->resp_port(), ping + "QUIT\r\n"), "+PONG\r\n+OK\r\n");
  }
  {  // protected_mode off: served from anywhere.
    std::string error;
    auto server = ServerProcess::Start(
        ServerOptions{.config_json = R"({"protected_mode": false})", .extra_args = listen_all},
        &error);
    ASSERT_NE(server, nullptr) << error;
    EXPECT_EQ(Exchange(address, server->resp_port(), ping + "QUIT\r\n"), "+PONG\r\n+OK\r\n");
    EXPECT_THAT(Exchange(address, server->http_port(), get), StartsWith("HTTP/1.1 404"));
  }
  {  // A credential: protected mode stands down and the credential is asked for instead.
    std::string error;
    auto server =
        ServerProcess::Start(ServerOptions{.config_json = R"({"resp": {"requirepass": "pw"}})",
                                           .extra_args = listen_all},
                             &error);
    ASSERT_NE(server, nullptr) << error;
    EXPECT_EQ(Exchange(address, server->resp_port(), ping + "QUIT\r\n"),
              "-NOAUTH Authentication required.\r\n+OK\r\n");
    EXPECT_THAT(Exchange(address, server->http_port(), get), StartsWith("HTTP/1.1 401"));
  }
}

}  // namespace
}  // namespace corral::integration
