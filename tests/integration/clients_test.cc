// The mainstream Redis client libraries, unmodified, against corral: redis-py (Debian's
// python3-redis), node-redis and ioredis (npm, pinned by tests/clients/node/package-lock.json).
// This starts one corral with ACL users and a TLS port and runs each library's suite in
// tests/clients/ against it; the suites assert, this checks that they ran and passed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/integration/certificates.h"
#include "tests/integration/server_process.h"

namespace corral::integration {
namespace {

using ::testing::HasSubstr;

class ClientsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new Certificates();
    ASSERT_TRUE(certs_->ok()) << certs_->error();
    const std::string config = R"({
      "listen": {"resp_tls": "127.0.0.1:0", "http_tls": "127.0.0.1:0"},
      "tls": {"cert_file": ")" +
                               (*certs_)["server.crt"] + R"(", "key_file": ")" +
                               (*certs_)["server.key"] + R"("},
      "resp": {"requirepass": "admin-pw"},
      "users": {"app": {"acl": "on ~plain:* %R~ro:* &* +@all -@dangerous", "password": "app-pw",
                        "tokens": ["tok-app-0123456789"]}}
    })";
    std::string error;
    server_ = ServerProcess::Start(ServerOptions{.config_json = config, .extra_args = {}}, &error)
                  .release();
    ASSERT_NE(server_, nullptr) << error;
  }
  static void TearDownTestSuite() {
    delete server_;
    delete certs_;
  }

  // Runs `argv` from the repository with the server's ports and CA in the environment.
  ProcessResult RunSuite(const std::vector<std::string>& argv) {
    std::vector<std::string> with_env = {
        "env",
        "CORRAL_RESP_PORT=" + std::to_string(server_->resp_port()),
        "CORRAL_RESP_TLS_PORT=" + std::to_string(server_->resp_tls_port()),
        "CORRAL_TLS_CA=" + (*certs_)["ca1.crt"],
    };
    with_env.insert(with_env.end(), argv.begin(), argv.end());
    return RunProcess(with_env, {}, Millis(120000));
  }

  static Certificates* certs_;
  static ServerProcess* server_;
};
Certificates* ClientsTest::certs_ = nullptr;
ServerProcess* ClientsTest::server_ = nullptr;

const std::string kClients = std::string(CORRAL_SOURCE_DIR) + "/tests/clients";

TEST_F(ClientsTest, RedisPy) {
  ProcessResult check = RunProcess({"/usr/bin/python3", "-c", "import redis"});
  ASSERT_TRUE(check.status.ok())
      << "redis-py is missing: run deploy/install-deps.sh (python3-redis)\n"
      << check.err;
  ProcessResult r = RunSuite({"/usr/bin/python3", kClients + "/python/test_redis_py.py"});
  EXPECT_TRUE(r.status.ok()) << r.status.ToString() << "\n" << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("Ran 5 tests")) << r.err;
  EXPECT_THAT(r.err, HasSubstr("\nOK")) << r.err;
}

TEST_F(ClientsTest, NodeRedisAndIoredis) {
  ASSERT_TRUE(InPath("node")) << "node is not in PATH";
  ASSERT_TRUE(std::filesystem::exists(kClients + "/node/node_modules/redis") &&
              std::filesystem::exists(kClients + "/node/node_modules/ioredis"))
      << "the Node clients are not installed: (cd tests/clients/node && npm ci), as "
         "deploy/run-tests.sh does";
  ProcessResult r = RunSuite({"node", "--test", kClients + "/node/clients.test.mjs"});
  EXPECT_TRUE(r.status.ok()) << r.status.ToString() << "\n" << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("# pass 8")) << r.out;
  EXPECT_THAT(r.out, HasSubstr("# fail 0")) << r.out;
}

// curl over HTTPS: the same users as RESP, and a refusal changes nothing.
TEST_F(ClientsTest, CurlOverHttps) {
  ASSERT_TRUE(InPath("curl"));
  const std::string base =
      "https://127.0.0.1:" + std::to_string(server_->http_tls_port()) + "/v1/cache/";
  auto curl = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {
        "curl", "-sS",       "--max-time", "5",           "--cacert", (*certs_)["ca1.crt"],
        "-o",   "/dev/null", "-w",         "%{http_code}"};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessResult r = RunProcess(argv, {}, Millis(10000));
    EXPECT_TRUE(r.status.ok()) << r.err;
    return r.out;
  };
  EXPECT_EQ(curl({"-X", "PUT", "--data-binary", "x", base + "plain/curl"}), "401");
  EXPECT_EQ(curl({"-u", "app:wrong", base + "plain/curl"}), "401");
  EXPECT_EQ(curl({"-u", "app:app-pw", "-X", "PUT", "--data-binary", "v", base + "plain/curl"}),
            "204");
  EXPECT_EQ(curl({"-H", "Authorization: Bearer tok-app-0123456789", base + "plain/curl"}), "200");
  EXPECT_EQ(curl({"-u", "app:app-pw", "-X", "PUT", "--data-binary", "v", base + "ro/curl"}), "403");
  EXPECT_EQ(curl({"-u", "app:app-pw", "-X", "DELETE", base + "order/1"}), "403");
  EXPECT_EQ(curl({"-u", "app:app-pw", base + "ro/curl"}), "404");  // the refused PUT stored nothing
}

}  // namespace
}  // namespace corral::integration
